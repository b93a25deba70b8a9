"""MCUboot image helpers the board's update never runs, apart from :mod:`smpdfu.mcuboot`
so that a board does not hold their code: :func:`scan` (an image in
random-access storage: the emulated bootloader), :func:`parse_header`,
:func:`read_info`, :func:`file_sha256`, and what an :class:`~smpdfu.mcuboot.ImageInfo`
implies (:func:`bootable`, :func:`encrypted`, :func:`signed`).
"""

from .compat import const, sha256
from .mcuboot import IMAGE_HEADER_SIZE, ImageVerifier, verify

_DEFAULT_BUF = const(512)  # the read buffer file_sha256 allocates when given none

# Header flags (bootutil/image.h, IMAGE_F_*).
IMAGE_F_NON_BOOTABLE = 0x10
_IMAGE_F_ENCRYPTED_AES128 = const(0x04)
_IMAGE_F_ENCRYPTED_AES256 = const(0x08)
# the signature TLVs, 0x20..0x25: RSA2048_PSS, ECDSA224, ECDSA_SIG, RSA3072_PSS, ED25519, SIG_PURE
_TLV_SIG_FIRST = const(0x20)
_TLV_SIG_LAST = const(0x25)

# BadImage.fault (on the errors ImageVerifier finds): what failed. The numbers are
# the high nibble of mcuboot's private _E_* consts (kept out of a board's heap there).
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
    is computed (``hash_verified`` False). Raises :class:`BadImage`, with
    what failed as ``e.fault`` (a ``FAULT_*`` number).
    """
    if buf is None:
        buf = bytearray(IMAGE_HEADER_SIZE)
    mv = memoryview(buf)
    v = ImageVerifier(allow_trailing=True)
    while v.pass_left or v.collect_left:  # both 0: the walk is over (done, or an error)
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
    return v.finish()


def parse_header(buf):
    """The :class:`ImageInfo` of the 32-byte MCUboot image header at the start of ``buf`` (no hash yet).

    Raises :class:`BadImage` naming what is wrong.
    """
    v = ImageVerifier()
    v.feed(buf[:IMAGE_HEADER_SIZE])
    if v.info is None:
        v.finish()  # raises: the header is short or bad
    return v.info


def bootable(info):
    """False when the header has IMAGE_F_NON_BOOTABLE."""
    return not info.flags & IMAGE_F_NON_BOOTABLE


def encrypted(info):
    """True when the image body is AES-encrypted."""
    return bool(info.flags & (_IMAGE_F_ENCRYPTED_AES128 | _IMAGE_F_ENCRYPTED_AES256))


def signed(info):
    """True when the TLV area holds a signature (not checked here)."""
    for t, _ in info.tlvs:
        if _TLV_SIG_FIRST <= t <= _TLV_SIG_LAST:
            return True
    return False


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
