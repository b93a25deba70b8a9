"""Small types for SMP responses, each built with ``from_response(dict)``."""

from binascii import hexlify

from .errors import ProtocolError

DEFAULT_BUF_SIZE = 384  # Zephyr's CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE default
DEFAULT_BUF_COUNT = 4


def _field(rsp, key, what):
    try:
        return rsp[key]
    except (KeyError, TypeError):
        raise ProtocolError("%s response has no %r field" % (what, key))


class McuMgrParams:
    """The server's SMP buffers: ``buf_size`` (header + CBOR) and ``buf_count``."""

    def __init__(self, buf_size=DEFAULT_BUF_SIZE, buf_count=DEFAULT_BUF_COUNT):
        self.buf_size = buf_size
        self.buf_count = buf_count

    @classmethod
    def from_response(cls, rsp):
        return cls(_field(rsp, "buf_size", "MCUmgr params"), rsp.get("buf_count", DEFAULT_BUF_COUNT))

    def __repr__(self):
        return "McuMgrParams(buf_size=%d, buf_count=%d)" % (self.buf_size, self.buf_count)


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
        g = d.get
        h = g("hash")
        return cls(g("image", 0), _field(d, "slot", "image state"), g("version", ""),
                   bytes(h) if h is not None else None,
                   bool(g("bootable")), bool(g("pending")), bool(g("confirmed")),
                   bool(g("active")), bool(g("permanent")))

    @staticmethod
    def list_from_response(rsp):
        """The list of :class:`ImageSlot` in an image state response."""
        images = _field(rsp, "images", "image state")
        return [ImageSlot.from_response(d) for d in images]

    @property
    def hash_hex(self):
        return hexlify(self.hash).decode() if self.hash else ""

    @property
    def flags(self):
        """The flags as letters: B bootable, P pending, C confirmed, A active, X permanent."""
        s = ""
        for flag, letter in ((self.bootable, "B"), (self.pending, "P"), (self.confirmed, "C"),
                             (self.active, "A"), (self.permanent, "X")):
            if flag:
                s += letter
        return s

    def __repr__(self):
        return "ImageSlot(image=%d, slot=%d, version=%r, flags=%r, hash=%s)" % (
            self.image, self.slot, self.version, self.flags, self.hash_hex)


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

    def __repr__(self):
        return "UploadResult(size=%d, match=%r, elapsed_ms=%d, chunks=%d, retries=%d, resumed_from=%d, window=%d)" % (
            self.size, self.match, self.elapsed_ms, self.chunks, self.retries, self.resumed_from, self.window)
