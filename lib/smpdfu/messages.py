"""Small types for SMP responses, each built with ``from_response(dict)``."""

from binascii import hexlify

from .compat import const
from .errors import ProtocolError

DEFAULT_BUF_SIZE = 384  # Zephyr's CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE default
_DEFAULT_BUF_COUNT = const(4)


_MISSING = object()
_MAX_HASH = const(64)  # SHA-512, the longest image hash MCUboot uses


def describe(what):
    """``what`` for a message: a command's name (text), or ``(group, cmd)``, named
    only now: the names module is loaded when an error is built, not before."""
    if isinstance(what, tuple):
        from .errcodes import command_name

        return command_name(what[0], what[1])
    return what


def _bad(what, key, v, want):
    r = repr(v)
    if len(r) > 40:
        r = r[:37] + "..."
    return ProtocolError("answer to %s: %r is %s, expected %s" % (describe(what), key, r, want))


def _get(rsp, key, what, default):
    v = rsp.get(key, _MISSING)
    if v is _MISSING and default is _MISSING:
        raise ProtocolError("answer to %s has no %r field" % (describe(what), key))
    return v


def get_int(rsp, key, what, default=_MISSING, lo=0, hi=None):
    """``rsp[key]`` as an int in ``lo..hi`` (None: no bound); a :class:`ProtocolError`
    naming the field otherwise.

    ``what`` names the command (for the message; text or ``(group, cmd)``,
    see :func:`describe`). A bool is not an int here:
    ``"off": true`` is an error, not offset 1. Missing gives ``default``.
    """
    v = _get(rsp, key, what, default)
    if v is _MISSING or v is default:
        return default
    if not isinstance(v, int) or isinstance(v, bool) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise _bad(what, key, v, "an integer" if lo is None and hi is None else "an integer %s..%s" % (
            "" if lo is None else lo, "" if hi is None else hi))
    return v


def get_bool(rsp, key, what, default=False):
    """``rsp[key]`` as a real CBOR bool (``"no"`` or 1 are errors, not "true")."""
    v = _get(rsp, key, what, default)
    if v is _MISSING or v is default:
        return default
    if v is not True and v is not False:
        raise _bad(what, key, v, "true or false")
    return v


def get_str(rsp, key, what, default=_MISSING):
    """``rsp[key]`` as text."""
    v = _get(rsp, key, what, default)
    if v is _MISSING or v is default:
        return default
    if not isinstance(v, str):
        raise _bad(what, key, v, "text")
    return v


def get_bytes(rsp, key, what, default=_MISSING, maxlen=_MAX_HASH):
    """``rsp[key]`` as 1 to ``maxlen`` bytes (a hash): never an int turned into zero bytes."""
    v = _get(rsp, key, what, default)
    if v is _MISSING or v is default:
        return default
    if not isinstance(v, (bytes, bytearray, memoryview)) or not 0 < len(v) <= maxlen:
        raise _bad(what, key, v, "a byte string of 1..%d bytes" % maxlen)
    return bytes(v)


def get_list(rsp, key, what, default=_MISSING):
    """``rsp[key]`` as a list whose items are all maps (dicts)."""
    v = _get(rsp, key, what, default)
    if v is _MISSING:
        return default
    if not isinstance(v, list):
        raise _bad(what, key, v, "a list")
    for d in v:
        if not isinstance(d, dict):
            raise _bad(what, key + "[]", d, "a map")
    return v


class McuMgrParams:
    """The server's SMP buffers: ``buf_size`` (header + CBOR) and ``buf_count``."""

    def __init__(self, buf_size=DEFAULT_BUF_SIZE, buf_count=_DEFAULT_BUF_COUNT):
        self.buf_size = buf_size
        self.buf_count = buf_count

    @classmethod
    def from_response(cls, rsp):
        what = "MCUmgr params"
        return cls(get_int(rsp, "buf_size", what, lo=16), get_int(rsp, "buf_count", what, _DEFAULT_BUF_COUNT, 1, 0xFFFF))


class ImageSlot:
    """One entry of the image state list.

    Attributes: ``image``, ``slot``, ``version`` (str, as the server formats
    it), ``hash`` (bytes: the MCUboot image hash), and the flags
    ``bootable``, ``pending``, ``confirmed``, ``active``, ``permanent``.
    """

    def __init__(self, image, slot, version, hash, bootable=False, pending=False,
                 confirmed=False, active=False, permanent=False):
        self.image = image
        self.slot = slot
        self.version = version
        self.hash = hash
        self.bootable = bootable
        self.pending = pending
        self.confirmed = confirmed
        self.active = active
        self.permanent = permanent

    @classmethod
    def from_response(cls, d):
        w = "image state"
        return cls(get_int(d, "image", w, 0, 0, 0xFF), get_int(d, "slot", w, hi=0xFF),
                   get_str(d, "version", w, ""), get_bytes(d, "hash", w, None),
                   get_bool(d, "bootable", w), get_bool(d, "pending", w), get_bool(d, "confirmed", w),
                   get_bool(d, "active", w), get_bool(d, "permanent", w))

    @staticmethod
    def list_from_response(rsp):
        """The list of :class:`ImageSlot` in an image state response."""
        return [ImageSlot.from_response(d) for d in get_list(rsp, "images", "image state")]

    @property
    def hash_hex(self):
        return hexlify(self.hash).decode() if self.hash else ""

    @property
    def flags(self):
        """The flags as letters: B bootable, P pending, C confirmed, A active, X permanent."""
        s = ""
        for i, flag in enumerate((self.bootable, self.pending, self.confirmed, self.active, self.permanent)):
            if flag:
                s += "BPCAX"[i]  # one string, not five names
        return s


def slot_info_from_response(rsp):
    """The ``images`` list of a slot info answer, every field type-checked.

    A list of dicts ``{"image", "slots": [{"slot", "size", "upload_image_id"?}],
    "max_image_size"?}`` (optional keys only when the device sent them).
    """
    w = "slot info"
    out = []
    for im in get_list(rsp, "images", w):
        d = {"image": get_int(im, "image", w, 0, 0, 0xFF), "slots": []}
        m = get_int(im, "max_image_size", w, None)
        if m is not None:
            d["max_image_size"] = m
        for s in get_list(im, "slots", w, []):
            e = {"slot": get_int(s, "slot", w, hi=0xFF), "size": get_int(s, "size", w)}
            u = get_int(s, "upload_image_id", w, None, 0, 0xFF)
            if u is not None:
                e["upload_image_id"] = u
            d["slots"].append(e)
        out.append(d)
    return out


def upload_offset(rsp, size):
    """The offset an image upload answer asks for next, and its ``match`` (True/False/None).

    The offset must be an int within the image; ``match`` a real bool (so
    ``"no"`` is an error, not a match).
    """
    off = rsp.get("off")
    if type(off) is int and 0 <= off <= size and "match" not in rsp:
        return off, None  # the usual answer, checked without the named lookups
    w = "image upload"
    return get_int(rsp, "off", w, hi=size), get_bool(rsp, "match", w, None)


class UploadResult:
    """What :func:`smpdfu.upload.upload` did.

    ``size`` bytes, ``sha`` (sent), ``match`` (True/False from the server,
    None when it did not say), ``elapsed_ms``, ``chunks`` sent, ``retries``,
    ``resumed_from`` (the server's offset at the start), ``window`` (requests
    in flight at the end), ``chunk_size`` (data bytes per full chunk).
    """

    def __init__(self, size, sha, match, elapsed_ms, chunks, retries, resumed_from, window, chunk_size):
        self.size = size
        self.sha = sha
        self.match = match
        self.elapsed_ms = elapsed_ms
        self.chunks = chunks
        self.retries = retries
        self.resumed_from = resumed_from
        self.window = window
        self.chunk_size = chunk_size

    @property
    def rate(self):
        """Bytes per second actually sent (0 when too fast to measure)."""
        sent = self.size - self.resumed_from
        return sent * 1000 // self.elapsed_ms if self.elapsed_ms > 0 else 0
