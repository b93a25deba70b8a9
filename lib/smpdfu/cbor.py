"""The subset of CBOR (RFC 8949) that SMP uses.

Unsigned and negative integers, byte and text strings, arrays, maps, false,
true and null. Decoding accepts definite and indefinite lengths; anything else
(tags, floats, undefined, simple values, reserved encodings) is rejected with a
:class:`CBORError` naming what was found and its offset.

The :class:`Encoder` writes into a caller's preallocated ``bytearray`` so that
an upload chunk goes from a ``memoryview`` of the file buffer straight into the
packet, with no intermediate copy.
"""

from .compat import const
from .errors import CBORError

_MAX_DEPTH = const(16)  # nesting limit: MicroPython's C stack is small
# Items one decode may build (array/map entries, string chunks). Each costs a
# heap object even when empty: 2 KB of empty arrays would be ~2000 lists, a
# MemoryError on a board. SMP answers hold a few dozen items.
_MAX_ITEMS = const(256)

# Errors, by number: errtext.CBOR_MESSAGES[n] is the message (loaded on a failure only).
_ROOM = const(0)
_BIG = const(1)
_TYPE = const(2)
_DEEP = const(3)
_ITEMS = const(4)
_EARLY = const(5)
_INSIDE = const(6)
_PAST = const(7)
_TRAILING = const(8)
_RESERVED = const(9)
_LONG = const(10)
_CHUNK = const(11)
_UTF8 = const(12)
_KEY = const(13)
_UNSUPPORTED = const(14)


def _fail(why, at, x=0):
    # The message is built by errtext, loaded only now: long strings cost
    # heap on a board whether an error comes or not.
    from .errtext import cbor_message

    raise CBORError(cbor_message(why, x, at))


class Encoder:
    """Encodes CBOR items into ``buf`` from position ``pos``.

    Three methods, each advancing ``pos`` and raising :class:`CBORError` when
    ``buf`` is too small: :meth:`value` writes a whole item, :meth:`head` an
    item's head (e.g. a map's, whose pairs follow, or a byte string's, whose
    bytes the caller copies in place), :meth:`raw` bytes that are CBOR already.
    Nothing is allocated apart from what ``str.encode`` needs for text.
    """

    def __init__(self, buf, pos=0):
        self.buf = buf
        self.pos = pos

    def head(self, major, n):
        """Write an item head: major type and argument ``n`` (>= 0)."""
        b = self.buf
        p = self.pos
        major <<= 5
        # Unrolled, the room check in each branch: this runs twice per upload chunk.
        if n < 24:
            if p >= len(b):
                _fail(_ROOM, p, (1, len(b)))
            b[p] = major | n
            self.pos = p + 1
        elif n < 0x100:
            if p + 2 > len(b):
                _fail(_ROOM, p, (2, len(b)))
            b[p] = major | 24
            b[p + 1] = n
            self.pos = p + 2
        elif n < 0x10000:
            if p + 3 > len(b):
                _fail(_ROOM, p, (3, len(b)))
            b[p] = major | 25
            b[p + 1] = n >> 8
            b[p + 2] = n & 0xFF
            self.pos = p + 3
        elif n >> 32 == 0:  # no long-int literal: small builds lack long ints
            if p + 5 > len(b):
                _fail(_ROOM, p, (5, len(b)))
            b[p] = major | 26
            b[p + 1] = n >> 24
            b[p + 2] = (n >> 16) & 0xFF
            b[p + 3] = (n >> 8) & 0xFF
            b[p + 4] = n & 0xFF
            self.pos = p + 5
        elif n >> 64 == 0:
            if p + 9 > len(b):
                _fail(_ROOM, p, (9, len(b)))
            b[p] = major | 27
            b[p + 1:p + 9] = n.to_bytes(8, "big")
            self.pos = p + 9
        else:
            _fail(_BIG, p, n)

    def raw(self, data):
        """Write bytes that are CBOR already (e.g. a constant key, encoded once:
        ``b"\\x63off"`` is the text ``"off"``)."""
        n = len(data)
        p = self.pos
        if p + n > len(self.buf):
            _fail(_ROOM, p, (n, len(self.buf)))
        self.buf[p:p + n] = data
        self.pos = p + n

    def value(self, obj, depth=0):
        """Write ``obj``: a dict, list, tuple, str, bytes-like (a memoryview too,
        copied once from the caller's buffer), int, bool or None."""
        if depth > _MAX_DEPTH:
            _fail(_DEEP, self.pos, _MAX_DEPTH)
        if obj is None or obj is True or obj is False:
            self.head(7, 22 if obj is None else 21 if obj else 20)  # 0xf6, 0xf5, 0xf4
        elif isinstance(obj, int):
            if obj < 0:
                self.head(1, -1 - obj)
            else:
                self.head(0, obj)
        # isinstance() one type at a time: a tuple of types would be allocated per call
        elif isinstance(obj, dict) or isinstance(obj, list) or isinstance(obj, tuple):
            m = isinstance(obj, dict)
            self.head(4 + m, len(obj))  # a map's pairs, or an array's items
            for k in obj:
                self.value(k, depth + 1)
                if m:
                    self.value(obj[k], depth + 1)
        else:
            t = isinstance(obj, str)
            if t:
                obj = obj.encode()
            elif not (isinstance(obj, bytes) or isinstance(obj, bytearray) or isinstance(obj, memoryview)):
                _fail(_TYPE, self.pos, type(obj).__name__)
            self.head(2 + t, len(obj))  # text, or a byte string
            self.raw(obj)


def loads(data, views=False, max_items=_MAX_ITEMS):
    """Decode one CBOR item that fills ``data`` exactly.

    With ``views=True`` byte strings come back as memoryviews into ``data``
    (no copy), which the server uses for upload chunks. At most ``max_items``
    items (default 256; string chunks count) are built, so what one packet
    costs to decode is capped.
    """
    mv = memoryview(data)
    end = len(mv)
    pos = 0
    left = max_items

    def item(depth, chunk=False):
        # The item at ``pos``; a ``chunk`` of an indefinite string comes back
        # as raw bytes (the string is decoded once, whole).
        nonlocal pos, left
        p = pos
        left -= 1
        if left < 0:
            _fail(_ITEMS, p)
        if depth > _MAX_DEPTH:
            _fail(_DEEP, p, _MAX_DEPTH)
        if p >= end:
            _fail(_EARLY, p)
        b = mv[p]
        major = b >> 5
        n = b & 31
        if major > 5:
            if b == 0xF4 or b == 0xF5 or b == 0xF6:
                pos = p + 1
                return None if b == 0xF6 else b == 0xF5
            _fail(_UNSUPPORTED, p, b)  # a tag, float, simple value or break: errtext says which
        p += 1
        if n < 24:
            pass  # the argument is in the head: most of an SMP answer
        elif n == 31 and major >= 2:
            n = -1  # indefinite length: items (or chunks) until a break
        elif n > 27:
            _fail(_RESERVED, p - 1, n)
        else:
            k = p + (1 << (n - 24))
            if k > end:
                _fail(_EARLY, p)
            n = 0
            try:
                while p < k:
                    n = n << 8 | mv[p]
                    p += 1
            except OverflowError:  # a build without long ints (small CircuitPython boards)
                _fail(_LONG, pos)
        pos = p
        if major == 0:
            return n
        if major == 1:
            return -1 - n
        if n >= 0 and major < 4:
            if p + n > end:
                _fail(_PAST, p, n)
            pos = p + n
            s = mv[p:p + n]
        else:
            # arrays, maps and indefinite strings: n items, or until a break
            out = [] if major == 4 else {} if major == 5 else bytearray()
            while n:
                if n > 0:
                    n -= 1
                elif pos >= end:
                    _fail(_INSIDE, pos)
                elif mv[pos] == 0xFF:
                    pos += 1
                    break
                if major == 4:
                    out.append(item(depth + 1))
                elif major == 5:
                    p = pos
                    k = item(depth + 1)
                    # one type at a time (a tuple of types is allocated), text keys first
                    if type(k) is not str and (isinstance(k, list) or isinstance(k, dict) or isinstance(k, memoryview)):
                        _fail(_KEY, p)
                    out[k] = item(depth + 1)
                else:
                    c = mv[pos]
                    if c >> 5 != major or c & 31 == 31:
                        _fail(_CHUNK, pos, c)
                    out.extend(item(depth + 1, True))
            if major > 3:
                return out
            s = out
        if chunk:
            return s
        if major == 3:
            try:
                return str(s, "utf-8")  # straight from the memoryview: no bytes copy
            except UnicodeError:
                _fail(_UTF8, p)
        return s if views and n >= 0 else bytes(s)

    obj = item(0)
    if pos != end:
        _fail(_TRAILING, pos, end - pos)
    return obj
