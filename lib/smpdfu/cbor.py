"""The subset of CBOR (RFC 8949) that SMP uses.

Unsigned and negative integers, byte and text strings, arrays, maps, false,
true and null. Decoding accepts definite and indefinite lengths; anything else
(tags, floats, undefined, simple values, reserved encodings) is rejected with a
:class:`CBORError` naming the byte and the offset where it was found.

The :class:`Encoder` writes into a caller's preallocated ``bytearray`` so that
an upload chunk goes from a ``memoryview`` of the file buffer straight into the
packet, with no intermediate copy.
"""

from .compat import const
from .errors import CBORError

_MAJ_UINT = const(0)
_MAJ_NINT = const(1)
_MAJ_BYTES = const(2)
_MAJ_TEXT = const(3)
_MAJ_ARRAY = const(4)
_MAJ_MAP = const(5)
_MAJ_TAG = const(6)
_MAJ_SIMPLE = const(7)

_FALSE = const(0xF4)
_TRUE = const(0xF5)
_NULL = const(0xF6)
_BREAK = const(0xFF)

_MAX_DEPTH = const(16)  # nesting limit: MicroPython's C stack is small
# Items one decode may build (array/map entries, string chunks). Each costs a
# heap object even when empty: 2 KB of empty arrays would be ~2000 lists, a
# MemoryError on a board. SMP answers hold a few dozen items.
_MAX_ITEMS = const(256)


class Encoder:
    """Encodes CBOR items into ``buf`` from position ``pos``.

    Methods write one item (or an array/map head) and advance ``pos``; they
    raise :class:`CBORError` when ``buf`` is too small. Nothing is allocated
    apart from what ``str.encode`` needs for text.
    """

    def __init__(self, buf, pos=0):
        self.buf = buf
        self.pos = pos

    def _need(self, n):
        if self.pos + n > len(self.buf):
            raise CBORError("CBOR item of %d bytes does not fit in the %d-byte buffer at %d" % (n, len(self.buf), self.pos))

    def head(self, major, n):
        """Write an item head: major type and argument ``n`` (>= 0)."""
        b = self.buf
        p = self.pos
        major <<= 5
        if n < 24:
            if p + 1 > len(b):
                self._need(1)  # raises; the check inline: this runs per chunk
            b[p] = major | n
            self.pos = p + 1
        elif n < 0x100:
            if p + 2 > len(b):
                self._need(2)
            b[p] = major | 24
            b[p + 1] = n
            self.pos = p + 2
        elif n < 0x10000:
            if p + 3 > len(b):
                self._need(3)
            b[p] = major | 25
            b[p + 1] = n >> 8
            b[p + 2] = n & 0xFF
            self.pos = p + 3
        elif n >> 32 == 0:  # no long-int literal: small builds lack long ints
            if p + 5 > len(b):
                self._need(5)
            b[p] = major | 26
            b[p + 1] = n >> 24
            b[p + 2] = (n >> 16) & 0xFF
            b[p + 3] = (n >> 8) & 0xFF
            b[p + 4] = n & 0xFF
            self.pos = p + 5
        elif n >> 64 == 0:
            if p + 9 > len(b):
                self._need(9)
            b[p] = major | 27
            b[p + 1:p + 9] = n.to_bytes(8, "big")
            self.pos = p + 9
        else:
            raise CBORError("integer %d does not fit in 64 bits" % n)

    def int(self, n):
        """Write an integer (negative ones as major type 1)."""
        if n < 0:
            self.head(_MAJ_NINT, -1 - n)
        else:
            self.head(_MAJ_UINT, n)

    def _string(self, major, data):
        self.head(major, len(data))
        self.raw(data)  # one copy, straight from the caller's buffer

    def bytes(self, data):
        """Write a byte string from any bytes-like object, memoryviews included."""
        self._string(_MAJ_BYTES, data)

    def text(self, s):
        """Write a text string; ``s`` is a ``str`` or already UTF-8 ``bytes``."""
        self._string(_MAJ_TEXT, s.encode() if isinstance(s, str) else s)

    def raw(self, data):
        """Write bytes that are CBOR already (e.g. a constant key, encoded once)."""
        n = len(data)
        p = self.pos
        if p + n > len(self.buf):
            self._need(n)
        self.buf[p:p + n] = data
        self.pos = p + n

    def array(self, n):
        """Write the head of an array of ``n`` items (the caller writes them)."""
        self.head(_MAJ_ARRAY, n)

    def map(self, n):
        """Write the head of a map of ``n`` pairs (the caller writes them)."""
        self.head(_MAJ_MAP, n)

    def bool(self, v):
        """Write true or false."""
        self._need(1)
        self.buf[self.pos] = _TRUE if v else _FALSE
        self.pos += 1

    def null(self):
        """Write null."""
        self._need(1)
        self.buf[self.pos] = _NULL
        self.pos += 1

    def value(self, obj, depth=0):
        """Write any supported Python value (dict, list, tuple, str, bytes-like, int, bool, None)."""
        if depth > _MAX_DEPTH:
            raise CBORError("CBOR nesting deeper than %d" % _MAX_DEPTH)
        if obj is None:
            self.null()
        elif obj is True or obj is False:
            self.bool(obj)
        elif isinstance(obj, int):
            self.int(obj)
        elif isinstance(obj, str):
            self.text(obj)
        elif isinstance(obj, (bytes, bytearray, memoryview)):
            self.bytes(obj)
        elif isinstance(obj, dict):
            self.map(len(obj))
            for k in obj:
                self.value(k, depth + 1)
                self.value(obj[k], depth + 1)
        elif isinstance(obj, (list, tuple)):
            self.array(len(obj))
            for v in obj:
                self.value(v, depth + 1)
        else:
            raise CBORError("cannot encode %s as CBOR" % type(obj).__name__)


def dumps(obj):
    """Encode ``obj`` and return the CBOR as ``bytes`` (convenience, allocates)."""
    size = 64
    while True:
        enc = Encoder(bytearray(size))
        try:
            enc.value(obj)
        except CBORError:
            if size > 1 << 24:
                raise
            size *= 4
            continue
        return bytes(enc.buf[:enc.pos])


class _Decoder:
    def __init__(self, data, views, max_items):
        self.mv = memoryview(data)
        self.pos = 0
        self.views = views
        self.budget = max_items

    def _spend(self):
        # One more item built: stop before a hostile packet costs too much.
        self.budget -= 1
        if self.budget < 0:
            self._fail("CBOR data holds too many items (limit reached)")

    def _fail(self, what):
        raise CBORError("%s at offset %d" % (what, self.pos))

    def _byte(self):
        if self.pos >= len(self.mv):
            self._fail("CBOR data ends early")
        b = self.mv[self.pos]
        self.pos += 1
        return b

    def _arg(self, info):
        # The argument of an item head whose additional info is ``info``.
        if info < 24:
            return info
        if info > 27:
            self.pos -= 1
            self._fail("reserved or indefinite CBOR additional info %d" % info)
        mv = self.mv
        p = self.pos
        n = 1 << (info - 24)
        if p + n > len(mv):
            self._fail("CBOR data ends early")
        self.pos = p + n
        # the common sizes without a loop: this runs for every key and value
        if info == 24:
            return mv[p]
        if info == 25:
            return (mv[p] << 8) | mv[p + 1]
        if info == 26:  # an image offset or size
            return (mv[p] << 24) | (mv[p + 1] << 16) | (mv[p + 2] << 8) | mv[p + 3]
        v = 0
        try:
            for i in range(p, p + n):
                v = (v << 8) | mv[i]
        except OverflowError:  # a build without long ints (small CircuitPython boards)
            self.pos = p - 1
            self._fail("CBOR integer too large for this build")
        return v

    def _string(self, major, info, depth):
        if info == 31:  # indefinite: definite chunks of the same type until break
            # Chunks go straight into one buffer: no object per chunk (a
            # hostile answer may be 2000 empty ones).
            raw = bytearray()
            mv = self.mv
            while True:
                self._spend()
                b = self._byte()
                if b == _BREAK:
                    break
                if b >> 5 != major or b & 31 == 31:
                    self.pos -= 1
                    self._fail("bad chunk 0x%02x in indefinite-length string" % b)
                n = self._arg(b & 31)
                p = self.pos
                if p + n > len(mv):
                    self._fail("CBOR string of %d bytes runs past the end" % n)
                self.pos = p + n
                if n:
                    raw.extend(mv[p:p + n])
            return self._finish_string(major, raw)
        n = self._arg(info)
        p = self.pos
        if p + n > len(self.mv):
            self._fail("CBOR string of %d bytes runs past the end" % n)
        self.pos = p + n
        return self._finish_string(major, self.mv[p:p + n])

    def _finish_string(self, major, raw):
        if major == _MAJ_TEXT:
            try:
                return str(raw, "utf-8")  # straight from the memoryview: no bytes copy
            except UnicodeError:
                self._fail("invalid UTF-8 in CBOR text")
        if self.views and isinstance(raw, memoryview):
            return raw
        return bytes(raw)

    def item(self, depth=0):
        if depth > _MAX_DEPTH:
            self._fail("CBOR nesting deeper than %d" % _MAX_DEPTH)
        self.budget -= 1  # inline (this runs for every key and value): see _spend
        if self.budget < 0:
            self._fail("CBOR data holds too many items (limit reached)")
        p = self.pos
        if p >= len(self.mv):
            self._fail("CBOR data ends early")
        b = self.mv[p]
        self.pos = p + 1
        major = b >> 5
        info = b & 31
        if major <= _MAJ_MAP:
            # Heads below 24 carry their argument: most of an SMP answer.
            if info < 24:
                n = info
            elif info == 31 and major >= _MAJ_BYTES:
                n = -1  # indefinite length
            else:
                n = self._arg(info)
            if major == _MAJ_UINT:
                return n
            if major == _MAJ_NINT:
                return -1 - n
            if major <= _MAJ_TEXT:
                if n < 0:
                    return self._string(major, info, depth)
                p = self.pos
                if p + n > len(self.mv):
                    self._fail("CBOR string of %d bytes runs past the end" % n)
                self.pos = p + n
                return self._finish_string(major, self.mv[p:p + n])
            if major == _MAJ_ARRAY:
                out = []
                if n < 0:
                    while not self._at_break():
                        out.append(self.item(depth + 1))
                else:
                    for _ in range(n):
                        out.append(self.item(depth + 1))
                return out
            out = {}
            if n < 0:
                while not self._at_break():
                    self._pair(out, depth)
            else:
                for _ in range(n):
                    self._pair(out, depth)
            return out
        self.pos -= 1
        if major == _MAJ_TAG:
            self._fail("CBOR tags are not supported (0x%02x)" % b)
        if b == _FALSE:
            self.pos += 1
            return False
        if b == _TRUE:
            self.pos += 1
            return True
        if b == _NULL:
            self.pos += 1
            return None
        if b == _BREAK:
            self._fail("unexpected CBOR break (0xff)")
        if 0xF9 <= b <= 0xFB:
            self._fail("CBOR floats are not supported (0x%02x)" % b)
        self._fail("unsupported CBOR simple value (0x%02x)" % b)

    def _at_break(self):
        if self.pos >= len(self.mv):
            self._fail("CBOR data ends inside an indefinite-length item")
        if self.mv[self.pos] == _BREAK:
            self.pos += 1
            return True
        return False

    def _pair(self, out, depth):
        at = self.pos
        mv = self.mv
        b = mv[at] if at < len(mv) else 0
        if 0x60 <= b < 0x78 and at + 1 + b - 0x60 <= len(mv):
            # A short text key (every SMP answer's): taken here, without the
            # generic item() round trip; counted like any item.
            self.budget -= 1
            if self.budget < 0:
                self._fail("CBOR data holds too many items (limit reached)")
            e = at + 1 + b - 0x60
            self.pos = e
            k = self._finish_string(_MAJ_TEXT, mv[at + 1:e])
            out[k] = self.item(depth + 1)
            return
        k = self.item(depth + 1)
        if isinstance(k, (list, dict, memoryview)):
            self.pos = at
            self._fail("unhashable CBOR map key")
        out[k] = self.item(depth + 1)


def loads(data, views=False, max_items=None):
    """Decode one CBOR item that fills ``data`` exactly.

    With ``views=True`` byte strings come back as memoryviews into ``data``
    (no copy), which the server uses for upload chunks. At most ``max_items``
    items (default 256; string chunks count) are built, so what
    one packet costs to decode is capped.
    """
    d = _Decoder(data, views, _MAX_ITEMS if max_items is None else max_items)
    obj = d.item()
    if d.pos != len(d.mv):
        d._fail("%d trailing bytes after the CBOR item" % (len(d.mv) - d.pos))
    return obj
