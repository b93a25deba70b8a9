"""A valid MCUboot image of any size, generated on the fly (portable tests).

``ImageStream(body_len)`` is header + a deterministic body + the TLV area
with the SHA-256 TLV, readable with ``readinto``/``seek``/``tell``: a 1 MB
image needs no 1 MB buffer. ``corrupt_at`` flips one byte of what is read
(the hashes stay those of the good image).
"""

import struct

from smpdfu.compat import sha256

_PERIOD = 251  # a prime, so the pattern does not line up with chunk sizes
_TABLE = memoryview(bytes(((i * 73 + 41) ^ (i >> 2)) & 0xFF for i in range(_PERIOD)) * 2)


class ImageStream:
    """An MCUboot image of ``32 + body_len + 40`` bytes (header, body, SHA256 TLV)."""

    def __init__(self, body_len, version=(1, 2, 3, 0), corrupt_at=None):
        self.header = struct.pack("<IIHHIIBBHII", 0x96F3B83D, 0, 32, 0, body_len, 0,
                                  version[0], version[1], version[2], version[3], 0)
        self.body_len = body_len
        self.size = 32 + body_len + 40
        self.pos = 0
        self.corrupt_at = None
        self.tail = b""
        h = self._hash(32 + body_len)
        self.image_hash = h
        self.tail = struct.pack("<HHHH", 0x6907, 40, 0x10, 32) + h
        self.sha = self._hash(self.size)  # the whole file: what SMP upload sends as sha
        self.corrupt_at = corrupt_at

    def _hash(self, n):
        h = sha256()
        buf = bytearray(1024)
        mv = memoryview(buf)
        self.pos = 0
        while self.pos < n:
            k = self.readinto(mv[:min(1024, n - self.pos)])
            h.update(mv[:k])
        self.pos = 0
        return h.digest()

    def readinto(self, buf):
        n = len(buf)
        p = self.pos
        if n > self.size - p:
            n = self.size - p
        k = 0
        while k < n:
            at = p + k
            if at < 32:
                m = min(32 - at, n - k)
                buf[k:k + m] = self.header[at:at + m]
            elif at < 32 + self.body_len:
                start = (at - 32) % _PERIOD
                m = min(_PERIOD, 32 + self.body_len - at, n - k)
                buf[k:k + m] = _TABLE[start:start + m]
            else:
                t = at - 32 - self.body_len
                m = min(len(self.tail) - t, n - k)
                buf[k:k + m] = self.tail[t:t + m]
            k += m
        c = self.corrupt_at
        if c is not None and p <= c < p + n:
            buf[c - p] ^= 0xFF
        self.pos = p + n
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
