"""The native (viper) loops give the same bytes as the portable Python ones.

Runs where the firmware has a native emitter (the MicroPython unix port);
skipped elsewhere (CPython, CircuitPython, the WebAssembly build), where
:mod:`smpdfu.compat` picks the Python versions anyway.
"""

from smpdfu import b64, compat, crc16

from _portable import skip

_MARKS = b"\x06\x09\x04\x14"


def _native():
    if not compat.NATIVE_CODE:
        skip("no native code emitter on this build")
    from smpdfu import native

    return native


def _data(n, seed):
    b = bytearray(n)
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        b[i] = (x >> 16) & 0xFF
    return b


def test_crc16_native_equals_python():
    native = _native()
    # compat hands the framing the native versions
    assert compat.crc16_range is native.crc16_range and compat.frame_lines is native.frame_lines
    assert native.crc16_range(b"123456789", 0, 9, 0) == 0x31C3
    for n in (0, 1, 2, 93, 356, 2048):
        d = _data(n + 7, n)
        for start, end, crc in ((0, n, 0), (3, n + 5, 0x1D0F), (7, n + 7, 0xFFFF)):
            want = crc16.crc16_range(d, start, end, crc)
            assert native.crc16_range(d, start, end, crc) == want, (n, start, end, crc)
            assert native.crc16_range(memoryview(d), start, end, crc) == want
        assert crc16.crc16(memoryview(d)[:n]) == native.crc16_range(d, 0, n, 0)


def _in_place(total, seed):
    # a frame buffer as the framing makes it: the raw bytes at its tail
    size = (total + 2) // 3 * 4 + 3 * ((total + 92) // 93)
    buf = bytearray(size)
    buf[size - total:] = _data(total, seed)
    return buf, size - total


def test_frame_lines_native_equals_python():
    import binascii

    native = _native()
    for total in list(range(0, 40)) + [92, 93, 94, 186, 187, 356, 2052]:
        a, at = _in_place(total, total)
        d = bytes(a[at:])
        b = bytearray(a)
        na = b64.frame_lines(a, at, total, _MARKS, 93)
        nb = native.frame_lines(b, at, total, _MARKS, 93)
        assert na == nb == len(a) and a == b, total
        # and each line is the base64 of its 93 bytes (C binascii as the reference)
        lines = bytes(a[:na]).split(b"\n")[:-1]
        assert len(lines) == (total + 92) // 93
        for i, line in enumerate(lines):
            assert line[:2] == (_MARKS[:2] if i == 0 else _MARKS[2:])
            assert line[2:] == binascii.b2a_base64(d[i * 93:i * 93 + 93])[:-1], (total, i)
    # short lines too (3 raw bytes each), from an offset with room to spare
    for total in (1, 2, 3, 7, 30):
        d = _data(total, 5)
        a = bytearray(8 * total + 8)
        a[-total:] = d
        b = bytearray(a)
        at = len(a) - total
        assert b64.frame_lines(a, at, total, _MARKS, 3) == native.frame_lines(b, at, total, _MARKS, 3)
        assert a == b, total


def test_base64_python_encode_into_matches_binascii():
    # the Python fallback alone, also on builds without an emitter
    import binascii

    for n in range(0, 64):
        d = _data(n + 4, n)
        for start in (0, 1, 2):
            out = bytearray(4 * n // 3 + 12)
            e = b64.encode_into(d, start, start + n, out, 3)
            assert bytes(out[3:e]) == binascii.b2a_base64(bytes(d[start:start + n]))[:-1], (n, start)


def test_frame_lines_python_in_place_matches_binascii():
    # the Python version alone, also on builds without an emitter: encoding
    # over the raw bytes gives what a separate buffer would
    import binascii

    for total in list(range(1, 12)) + [92, 93, 94, 95, 186, 187, 300, 2052]:
        buf, at = _in_place(total, total + 1)
        d = bytes(buf[at:])
        n = b64.frame_lines(buf, at, total, _MARKS, 93)
        assert n == len(buf)
        want = b"".join((_MARKS[:2] if i == 0 else _MARKS[2:]) + binascii.b2a_base64(d[i:i + 93])
                        for i in range(0, total, 93))
        assert bytes(buf) == want, total
