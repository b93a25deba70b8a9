"""MCUboot image helpers the board's update never runs, apart from :mod:`smpdfu.mcuboot`
so that a board does not hold their code: :func:`scan` (an image in
random-access storage: the emulated bootloader), :func:`read_info`,
:func:`file_sha256`.
"""

from .compat import const, sha256
from .errors import BadImage
from .mcuboot import IMAGE_HEADER_SIZE, ImageVerifier, verify

_DEFAULT_BUF = const(512)  # the read buffer file_sha256 allocates when given none

# ImageVerifier.fault (BadImage.fault from scan): what failed. The numbers are
# mcuboot's private _F_* consts (kept out of a board's heap there).
FAULT_HEADER = 1  # bad magic, header size...
FAULT_TLV_AREA = 2  # a TLV info header (magic, size)
FAULT_TLV = 3  # a TLV entry overruns its area
FAULT_HASHES = 4  # more than one SHA256 TLV
FAULT_HASH_SIZE = 5  # a SHA256 TLV that is not 32 bytes
FAULT_NO_HASH = 6  # no SHA256 TLV
FAULT_HASH = 7  # the SHA256 TLV does not match the image
FAULT_TRUNCATED = 8  # the bytes ended inside the image


def scan(read, size, buf=None):
    """Walk the header and TLVs of an image in random-access storage; return :class:`ImageInfo`.

    ``read(off, mv)`` fills the memoryview ``mv`` with the bytes at ``off``;
    ``size`` is how many bytes there are (a slot's size). The body is skipped,
    not read: the structure is checked and the SHA-256 TLV found, but no hash
    is computed (``hash_verified`` False). Raises :class:`BadImage`; the
    verifier's ``fault`` is on it as ``e.fault``.
    """
    if buf is None:
        buf = bytearray(IMAGE_HEADER_SIZE)
    mv = memoryview(buf)
    v = ImageVerifier(allow_trailing=True)
    while not v.complete and v.error is None:
        k = v.pass_left
        if k:
            if v.pos + k > size:
                break
            v.skip(k)
            continue
        n = v.collect_left
        if n > len(buf):
            n = len(buf)
        if v.pos + n > size:
            break
        read(v.pos, mv[:n])
        v.feed(mv[:n])
    try:
        return v.finish()
    except BadImage as e:
        e.fault = v.fault
        raise


def read_info(stream, buf=None, size=None):
    """Same as :func:`verify` (the image must be read whole to find its TLVs)."""
    return verify(stream, buf, size)


def file_sha256(stream, buf=None):
    """SHA-256 of everything ``stream`` yields (what SMP upload sends as ``sha``)."""
    if buf is None:
        buf = bytearray(_DEFAULT_BUF)
    mv = memoryview(buf)
    h = sha256()
    while True:
        n = stream.readinto(mv)
        if not n:
            break
        h.update(mv[:n])
    return h.digest()
