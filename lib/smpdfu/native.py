"""Per-byte loops of the upload hot path as MicroPython native (viper) code.

Only importable where the firmware has a native emitter: CPython lacks the
``micropython`` module (ImportError); CircuitPython and the WebAssembly build
reject the decorator (SyntaxError); an .mpy built for another architecture is
refused (ValueError). :mod:`smpdfu.compat` imports it once and otherwise uses
the portable Python versions (:mod:`smpdfu.crc16`, :mod:`smpdfu.b64`), which
give the same bytes (host_tests/portable/test_native.py).

Viper works on raw buffers (``ptr8``/``ptr16``), so these take a buffer plus
start/end indexes rather than a slice: a slice would be an allocation.
"""

import micropython

# Not imported from smpdfu.b64 (nor the CRC table from smpdfu.crc16): that
# would load their Python loops too, which a build with native code never runs.
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@micropython.viper
def crc16_range(buf, start: int, end: int, crc: int) -> int:
    """CRC-16/XMODEM of ``buf[start:end]``, continuing from ``crc``.

    Table-free: the polynomial 0x1021 (x^12 + x^5 + 1) applied to a byte is
    a few shifts and xors, as fast here as a table lookup and no 512-byte
    table on the heap (the Python twin needs the table: it is 7x faster there).
    """
    p = ptr8(buf)  # noqa: F821 - viper built-in
    i = start
    while i < end:
        x = ((crc >> 8) ^ p[i]) & 0xFF
        x ^= x >> 4
        crc = ((crc << 8) ^ (x << 12) ^ (x << 5) ^ x) & 0xFFFF
        i += 1
    return crc


@micropython.viper
def frame_lines(buf, at: int, total: int, marks, line_raw: int) -> int:
    """The twin of :func:`smpdfu.b64.frame_lines`: base64 lines of
    ``buf[at:at + total]`` over ``buf`` from 0, in place as it does; returns their length."""
    t = ptr8(_ALPHABET)  # noqa: F821
    d = ptr8(buf)  # noqa: F821
    m = ptr8(marks)  # noqa: F821
    o = 0
    start = at
    stop = at + total
    while start < stop:
        end = start + line_raw
        if end > stop:
            end = stop
        k = 0 if start == at else 2
        d[o] = m[k]
        d[o + 1] = m[k + 1]
        o += 2
        i = start
        end3 = end - (end - start) % 3
        while i < end3:
            v = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2]
            d[o] = t[v >> 18]
            d[o + 1] = t[(v >> 12) & 63]
            d[o + 2] = t[(v >> 6) & 63]
            d[o + 3] = t[v & 63]
            o += 4
            i += 3
        r = end - end3
        if r:
            v = d[i] << 16
            if r == 2:
                v |= d[i + 1] << 8
            d[o] = t[v >> 18]
            d[o + 1] = t[(v >> 12) & 63]
            d[o + 2] = t[(v >> 6) & 63] if r == 2 else 61  # "="
            d[o + 3] = 61
            o += 4
        d[o] = 10  # "\n"
        o += 1
        start = end
    return o
