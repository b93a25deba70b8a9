"""smpdfu.compat behaves the same on CPython and MicroPython."""

from _portable import on_micropython, raises

from smpdfu import compat
from smpdfu.compat import const, sha256, ticks_add, ticks_diff, ticks_ms


def test_implementation_flags_match_runtime():
    assert compat.IS_MICROPYTHON == on_micropython()


def test_const_returns_its_value():
    assert const(0x1234) == 0x1234
    assert const(-1) == -1


def test_ticks_diff_and_add():
    a = ticks_ms()
    b = ticks_add(a, 250)
    assert ticks_diff(b, a) == 250
    assert ticks_diff(a, b) == -250
    # ticks_add with a negative delta undoes a positive one
    assert ticks_diff(ticks_add(b, -250), a) == 0


def test_sleep_ms_advances_ticks():
    t0 = ticks_ms()
    compat.sleep_ms(20)
    dt = ticks_diff(ticks_ms(), t0)
    assert 15 <= dt < 2000, dt


def test_sha256_known_vectors():
    # FIPS 180-2 test vectors
    assert sha256(b"abc").digest() == bytes.fromhex(
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    h = sha256()
    h.update(b"ab")
    h.update(b"c")
    assert h.digest() == sha256(b"abc").digest()
    assert sha256(b"").digest()[:4] == bytes((0xE3, 0xB0, 0xC4, 0x42))


def test_raises_helper_returns_the_exception():
    e = raises(ValueError, int, "not a number")
    assert isinstance(e, ValueError)
    err = raises(AssertionError, raises, ValueError, int, "7")
    assert "not raised" in str(err)
