"""Helpers for portable tests (run by pytest on CPython AND by MicroPython).

Portable tests are plain modules of ``test_*`` functions taking no arguments.
They use ``assert`` and these helpers instead of pytest's API::

    from _portable import skip, raises, on_micropython

    def test_bad_frame():
        e = raises(FrameError, decode, b"junk")
        assert "crc" in str(e)
"""

import sys


def on_micropython():
    """True when running on MicroPython (or CircuitPython)."""
    return sys.implementation.name in ("micropython", "circuitpython")


class SkipTest(Exception):
    """Raised by ``skip``; the MicroPython runner reports it as SKIP."""


def skip(reason=""):
    """Skip the current test: ``pytest.skip`` under pytest, else SkipTest."""
    # pytest is only looked up when already imported: never import it on a board
    pytest = sys.modules.get("pytest")
    if pytest is not None and hasattr(pytest, "skip"):
        pytest.skip(reason)
    raise SkipTest(reason)


def dumps(obj):
    """``obj`` encoded as CBOR ``bytes`` by :class:`smpdfu.cbor.Encoder`, in a
    buffer that grows up to 1 MiB: the tests' and test servers' convenience (a
    board encodes into its packet buffer, never into a new one)."""
    from smpdfu.cbor import Encoder
    from smpdfu.errors import CBORError

    size = 64
    while True:
        enc = Encoder(bytearray(size))
        try:
            enc.value(obj)
        except CBORError:  # too big for the buffer, or not encodable at all
            if size >= 1 << 20:
                raise
            size *= 4
            continue
        return bytes(enc.buf[:enc.pos])


def raises(exc_type, fn, *args, **kwargs):
    """Call ``fn(*args, **kwargs)``; return the ``exc_type`` it raised.

    Fails (AssertionError) when it returns normally; other exceptions propagate.
    """
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    name = getattr(exc_type, "__name__", None) or repr(exc_type)
    raise AssertionError("%s not raised by %r" % (name, fn))
