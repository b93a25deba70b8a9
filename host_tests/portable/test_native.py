"""The native (viper) loops give the same bytes as the portable Python ones.

Runs where the firmware has a native emitter (the MicroPython unix port);
skipped elsewhere (CPython, CircuitPython, the WebAssembly build), where
:mod:`smpdfu.compat` picks the Python versions anyway.
"""

from smpdfu import b64, compat, crc16

from _portable import skip


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
    assert compat.crc16_range is native.crc16_range and compat.b64_into is native.b64_into
    assert native.crc16_range(b"123456789", 0, 9, 0) == 0x31C3
    for n in (0, 1, 2, 93, 356, 2048):
        d = _data(n + 7, n)
        for start, end, crc in ((0, n, 0), (3, n + 5, 0x1D0F), (7, n + 7, 0xFFFF)):
            want = crc16.crc16_range(d, start, end, crc)
            assert native.crc16_range(d, start, end, crc) == want, (n, start, end, crc)
            assert native.crc16_range(memoryview(d), start, end, crc) == want
        assert crc16.crc16(memoryview(d)[:n]) == native.crc16_range(d, 0, n, 0)


def test_base64_native_equals_python():
    import binascii

    native = _native()
    for n in range(0, 100):
        d = _data(n + 4, n)
        for start in (0, 1, 2):
            end = start + n
            a = bytearray(b"\xAA" * (4 * n // 3 + 10))
            b = bytearray(a)
            ea = b64.encode_into(d, start, end, a, 3)
            eb = native.b64_into(d, start, end, b, 3)
            assert ea == eb and a == b, (n, start)
            # and both are base64 (C binascii as the reference)
            ref = binascii.b2a_base64(bytes(d[start:end]))[:-1]
            assert bytes(a[3:ea]) == ref, (n, start)


def test_framed_bytes_same_with_native_and_python():
    native = _native()
    from smpdfu.framing import FrameEncoder

    enc = FrameEncoder(2048)
    for n in (10, 93, 300, 2040):
        pkt = _data(n, n + 1)
        framed = bytes(enc.encode_packet(pkt))
        # the same lines built from the Python loops
        raw = bytearray(n + 4)
        raw[0] = (n + 2) >> 8
        raw[1] = (n + 2) & 0xFF
        raw[2:2 + n] = pkt
        crc = crc16.crc16_range(raw, 2, 2 + n, 0)
        raw[2 + n] = crc >> 8
        raw[3 + n] = crc & 0xFF
        out = bytearray(len(framed) + 8)
        o = 0
        for src in range(0, n + 4, 93):
            out[o:o + 2] = b"\x06\x09" if src == 0 else b"\x04\x14"
            o = b64.encode_into(raw, src, min(src + 93, n + 4), out, o + 2)
            out[o] = 10
            o += 1
        assert bytes(out[:o]) == framed, n
    assert native.crc16_range(raw, 2, n + 4, 0) == 0
