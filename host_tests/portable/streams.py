"""Synthetic image streams for portable upload tests: bytes generated on the fly.

``PatternStream(size)`` yields an MCUboot-looking header (magic first) and a
deterministic pattern, with ``readinto`` (and ``seek``/``tell`` unless
``seekable=False``), so a 1 MB image needs no 1 MB buffer.
"""

from smpdfu.compat import sha256

_MAGIC = b"\x3d\xb8\xf3\x96"


_PERIOD = 251  # a prime, so the pattern does not line up with chunk sizes
_TABLE = bytes(((i * 89 + 17) ^ (i >> 3)) & 0xFF for i in range(_PERIOD)) * 2
_TABLE_MV = memoryview(_TABLE)


class PatternStream:
    """A generated image of ``size`` bytes; ``max_read`` caps each readinto."""

    def __init__(self, size, max_read=0, magic=_MAGIC):
        self.size = size
        self.pos = 0
        self.max_read = max_read
        self.magic = magic
        self.reads = 0

    def readinto(self, buf):
        n = len(buf)
        left = self.size - self.pos
        if n > left:
            n = left
        if self.max_read and n > self.max_read:
            n = self.max_read
        p = self.pos
        k = 0
        while k < n:
            start = (p + k) % _PERIOD
            m = n - k
            if m > _PERIOD:
                m = _PERIOD
            buf[k:k + m] = _TABLE_MV[start:start + m]
            k += m
        i = p
        while i < 4 and i < p + n:  # the image magic comes first
            buf[i - p] = self.magic[i]
            i += 1
        self.pos = p + n
        self.reads += 1
        return n

    def tell(self):
        return self.pos

    def seek(self, off, whence=0):
        if whence == 2:
            off += self.size
        elif whence == 1:
            off += self.pos
        self.pos = off
        return off


class ForwardStream:
    """A stream that can only go forward (no ``seek``), wrapping a PatternStream."""

    def __init__(self, size, max_read=0):
        self._s = PatternStream(size, max_read=max_read)

    def readinto(self, buf):
        return self._s.readinto(buf)


def pattern_bytes(size, magic=_MAGIC):
    """The same content as ``PatternStream(size)``, as bytes (small sizes only)."""
    b = bytearray(size)
    PatternStream(size, magic=magic).readinto(b)
    return bytes(b)


def pattern_sha(size):
    """SHA-256 of ``PatternStream(size)``, computed in 1 KB pieces."""
    h = sha256()
    s = PatternStream(size)
    buf = bytearray(1024)
    while True:
        n = s.readinto(buf)
        if not n:
            break
        h.update(memoryview(buf)[:n])
    return h.digest()
