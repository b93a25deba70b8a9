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


def test_frame_lines_native_equals_python():
    import binascii

    native = _native()
    for total in list(range(0, 40)) + [92, 93, 94, 186, 187, 356, 2052]:
        d = _data(total, total)
        a = bytearray(b"\xAA" * (total * 3 + 16))
        b = bytearray(a)
        for line_raw in (3, 93):
            na = b64.frame_lines(d, total, a, _MARKS, line_raw)
            nb = native.frame_lines(d, total, b, _MARKS, line_raw)
            assert na == nb and a == b, (total, line_raw)
        # and each line is the base64 of its 93 bytes (C binascii as the reference)
        lines = bytes(a[:na]).split(b"\n")[:-1]
        assert len(lines) == (total + 92) // 93
        for i, line in enumerate(lines):
            assert line[:2] == (_MARKS[:2] if i == 0 else _MARKS[2:])
            assert line[2:] == binascii.b2a_base64(bytes(d[i * 93:i * 93 + 93]))[:-1], (total, i)


def test_base64_python_encode_into_matches_binascii():
    # the Python fallback alone, also on builds without an emitter
    import binascii

    for n in range(0, 64):
        d = _data(n + 4, n)
        for start in (0, 1, 2):
            out = bytearray(4 * n // 3 + 12)
            e = b64.encode_into(d, start, start + n, out, 3)
            assert bytes(out[3:e]) == binascii.b2a_base64(bytes(d[start:start + n]))[:-1], (n, start)


def test_frame_lines_in_place_over_the_tail_of_dst():
    # The framing keeps the raw frame at the tail of its output buffer and
    # encodes over it: both versions must give what a separate buffer gives.
    impls = [b64.frame_lines]
    if compat.NATIVE_CODE:
        from smpdfu import native

        impls.append(native.frame_lines)
    for total in list(range(1, 12)) + [92, 93, 94, 95, 186, 187, 300, 2052]:
        src = _data(total, total + 1)
        size = (total + 2) // 3 * 4 + 3 * ((total + 92) // 93)
        want = bytearray(size)
        assert b64.frame_lines(src, total, want, _MARKS, 93) == size
        for f in impls:
            buf = bytearray(size)
            buf[size - total:] = src
            assert f(memoryview(buf)[size - total:], total, buf, _MARKS, 93) == size
            assert buf == want, (f, total)
