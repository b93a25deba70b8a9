"""Base64 encoding into a preallocated buffer, allocating nothing.

Used by the serial framing on MicroPython builds without a native emitter
(CircuitPython, the WebAssembly build): C ``binascii.b2a_base64`` allocates
its result per line, this allocates nothing. Where the emitter exists
:mod:`smpdfu.native` has the same loops as viper code; :mod:`smpdfu.compat`
picks one.
"""

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_PAD = 61  # "="


def encode_into(src, start, end, dst, o):
    """Write base64 of ``src[start:end]`` into ``dst`` from index ``o``; return the end index.

    Indexes rather than a slice: a memoryview slice would be an allocation
    per call, and this runs once per frame line.
    """
    t = _ALPHABET
    n = end - start
    i = start
    end3 = start + n - n % 3
    while i < end3:
        v = (src[i] << 16) | (src[i + 1] << 8) | src[i + 2]
        dst[o] = t[v >> 18]
        dst[o + 1] = t[(v >> 12) & 63]
        dst[o + 2] = t[(v >> 6) & 63]
        dst[o + 3] = t[v & 63]
        o += 4
        i += 3
    r = end - end3
    if r:
        v = src[i] << 16
        if r == 2:
            v |= src[i + 1] << 8
        dst[o] = t[v >> 18]
        dst[o + 1] = t[(v >> 12) & 63]
        dst[o + 2] = t[(v >> 6) & 63] if r == 2 else _PAD
        dst[o + 3] = _PAD
        o += 4
    return o


def frame_lines(buf, at, total, marks, line_raw):
    """Base64 of ``buf[at:at + total]`` as frame lines written over ``buf``
    from index 0; return their length.

    Lines carry ``line_raw`` raw bytes each; the first starts with
    ``marks[0:2]``, the others with ``marks[2:4]``, and each ends with "\\n".
    In place (the framing keeps the raw frame at the tail of its buffer):
    each group of bytes is read before its base64 is written, and the output
    never overtakes what is still to be read when ``at`` leaves room for the
    lines (base64, markers and newlines) that are longer than the raw bytes.
    """
    o = 0
    start = at
    stop = at + total
    while start < stop:
        end = start + line_raw
        if end > stop:
            end = stop
        k = 0 if start == at else 2
        buf[o] = marks[k]
        buf[o + 1] = marks[k + 1]
        o = encode_into(buf, start, end, buf, o + 2)
        buf[o] = 10
        o += 1
        start = end
    return o
