"""What SMP responses hold, every field type-checked where it is read.

A field of the wrong type is a :class:`~smpdfu.errors.ProtocolError` naming the
field and the command (issue 9), never a ``TypeError`` or a truthy guess.
"""

from .compat import const

DEFAULT_BUF_SIZE = 384  # Zephyr's CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE default
_DEFAULT_BUF_COUNT = const(4)
_MAX_HASH = const(64)  # SHA-512, the longest image hash MCUboot uses

_MISSING = object()


def field(rsp, key, what, t, default=_MISSING, lo=0, hi=None):
    """``rsp[key]``, of type ``t`` exactly, else a :class:`~smpdfu.errors.ProtocolError` naming the
    field and ``what``, the command (text or ``(group, cmd)``, see :func:`smpdfu.errtext.describe`).

    A missing field (or one that is ``default``, e.g. a CBOR null for None) gives
    ``default``; without one it is an error. ``t`` is ``int`` (within ``lo..hi``,
    None: no bound; a bool is no int: ``"off": true`` is not offset 1), ``bool``
    (``"no"`` or 1 are no answer), ``str``, ``bytes`` (1..64: a hash; never an int
    turned into zero bytes) or ``list`` (of maps).
    """
    v = rsp.get(key, default)
    if v is default and v is not _MISSING:
        return v
    if type(v) is t:
        if t is int:
            if (lo is None or v >= lo) and (hi is None or v <= hi):
                return v
        elif t is bytes:
            if 0 < len(v) <= _MAX_HASH:
                return v
        elif t is list:
            for d in v:
                if type(d) is not dict:
                    key += "[]"
                    v = d
                    t = dict
                    break
            else:
                return v
        else:
            return v
    from .errtext import field_error  # the message: loaded on a failure only

    raise field_error(what, key, v, t, lo, hi, v is _MISSING)


class McuMgrParams:
    """The server's SMP buffers, from an OS params answer ``rsp``: ``buf_size``
    (header + CBOR) and ``buf_count`` (4 when absent)."""

    def __init__(self, rsp):
        w = 0x0006  # OS params: group << 8 | cmd, named in a message only (no string held)
        self.buf_size = field(rsp, "buf_size", w, int, _MISSING, 16)
        self.buf_count = field(rsp, "buf_count", w, int, _DEFAULT_BUF_COUNT, 1, 0xFFFF)


class ImageSlot:
    """One entry of the image state list.

    Attributes: ``image``, ``slot``, ``version`` (str, as the server formats
    it), ``hash`` (bytes: the MCUboot image hash, or None), and the flags
    ``bootable``, ``pending``, ``confirmed``, ``active``, ``permanent``.
    """

    @staticmethod
    def list_from_response(rsp):
        """The list of :class:`ImageSlot` in an image state response."""
        w = 0x0100  # image state (group << 8 | cmd, as for params)
        out = []
        for d in field(rsp, "images", w, list):
            s = ImageSlot()
            s.image = field(d, "image", w, int, 0, 0, 0xFF)
            s.slot = field(d, "slot", w, int, _MISSING, 0, 0xFF)
            s.version = field(d, "version", w, str, "")
            s.hash = field(d, "hash", w, bytes, None)
            s.bootable = field(d, "bootable", w, bool, False)
            s.pending = field(d, "pending", w, bool, False)
            s.confirmed = field(d, "confirmed", w, bool, False)
            s.active = field(d, "active", w, bool, False)
            s.permanent = field(d, "permanent", w, bool, False)
            out.append(s)
        return out


def slot_info_from_response(rsp):
    """The ``images`` list of a slot info answer, every known field type-checked.

    The answer's own dicts ``{"image", "slots": [{"slot", "size", "upload_image_id"?}],
    "max_image_size"?}``, ``image`` (0) and ``slots`` (``[]``) filled in when missing.
    """
    w = 0x0106  # slot info (group << 8 | cmd, as for params)
    images = field(rsp, "images", w, list)
    for im in images:
        im["image"] = field(im, "image", w, int, 0, 0, 0xFF)
        im["slots"] = field(im, "slots", w, list, [])
        field(im, "max_image_size", w, int, None)
        for s in im["slots"]:
            field(s, "slot", w, int, _MISSING, 0, 0xFF)
            field(s, "size", w, int)
            field(s, "upload_image_id", w, int, None, 0, 0xFF)
    return images


def upload_offset(rsp, size):
    """The offset an image upload answer asks for next, and its ``match`` (True/False/None).

    The offset must be an int within the image; ``match`` a real bool (so
    ``"no"`` is an error, not a match).
    """
    w = 0x0101  # image upload (group << 8 | cmd, as for params)
    return field(rsp, "off", w, int, _MISSING, 0, size), field(rsp, "match", w, bool, None)


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
