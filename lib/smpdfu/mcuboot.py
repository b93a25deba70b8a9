"""MCUboot image parsing and verification, streaming and in constant memory.

An MCUboot image (as ``imgtool sign`` writes it) is, little-endian::

    header (32 bytes, padded to hdr_size) | image (img_size bytes)
    | protected TLV area (magic 0x6908, optional, prot_tlv_size bytes)
    | TLV area (magic 0x6907; holds the SHA-256 of everything before it)
    | optional trailer padding up to the slot size (``imgtool --pad``)

``verify()`` reads such a file once, front to back, through one small buffer:
it checks the structure and the image hash, and also computes the SHA-256 of
the whole file, which is what the SMP upload command sends as ``sha``.
Signatures are reported (``ImageInfo.signed``) but not checked: boards have no
public-key crypto, and MCUboot checks them itself before booting.
"""

import struct
from binascii import hexlify

from .compat import const, sha256
from .errors import BadImage

IMAGE_MAGIC = const(0x96F3B83D)
IMAGE_HEADER_SIZE = const(32)
TLV_INFO_MAGIC = const(0x6907)
TLV_PROT_INFO_MAGIC = const(0x6908)
TLV_INFO_SIZE = const(4)
TLV_SIZE = const(4)

# Header flags (bootutil/image.h, IMAGE_F_*).
IMAGE_F_PIC = const(0x01)
IMAGE_F_ENCRYPTED_AES128 = const(0x04)
IMAGE_F_ENCRYPTED_AES256 = const(0x08)
IMAGE_F_NON_BOOTABLE = const(0x10)
IMAGE_F_RAM_LOAD = const(0x20)
IMAGE_F_ROM_FIXED = const(0x100)
IMAGE_F_COMPRESSED_LZMA1 = const(0x200)
IMAGE_F_COMPRESSED_LZMA2 = const(0x400)
IMAGE_F_COMPRESSED_ARM_THUMB = const(0x800)

# TLV types (bootutil/image.h, IMAGE_TLV_*).
TLV_KEYHASH = const(0x01)
TLV_PUBKEY = const(0x02)
TLV_SHA256 = const(0x10)
TLV_SHA384 = const(0x11)
TLV_SHA512 = const(0x12)
TLV_RSA2048_PSS = const(0x20)
TLV_ECDSA224 = const(0x21)
TLV_ECDSA_SIG = const(0x22)
TLV_RSA3072_PSS = const(0x23)
TLV_ED25519 = const(0x24)
TLV_SIG_PURE = const(0x25)
TLV_ENC_RSA2048 = const(0x30)
TLV_ENC_KW = const(0x31)
TLV_ENC_EC256 = const(0x32)
TLV_ENC_X25519 = const(0x33)
TLV_ENC_X25519_SHA512 = const(0x34)
TLV_DEPENDENCY = const(0x40)
TLV_SEC_CNT = const(0x50)
TLV_BOOT_RECORD = const(0x60)
TLV_DECOMP_SIZE = const(0x70)
TLV_DECOMP_SHA = const(0x71)
TLV_DECOMP_SIGNATURE = const(0x72)
TLV_UUID_VID = const(0x74)
TLV_UUID_CID = const(0x75)

_SIG_TLVS = (TLV_RSA2048_PSS, TLV_ECDSA224, TLV_ECDSA_SIG, TLV_RSA3072_PSS,
             TLV_ED25519, TLV_SIG_PURE)
_HASH_SIZE = const(32)
_DEFAULT_BUF = const(512)
# The last 16 bytes of an image padded to its slot (imgtool --pad): the
# standard boot magic, or (max_align > 8) 2 bytes of alignment + 14 fixed bytes.
_BOOT_MAGIC = b"\x77\xc2\x95\xf3\x60\xd2\xef\x7f\x35\x52\x50\x0f\x2c\xb6\x79\x80"
_BOOT_MAGIC_ALT_TAIL = b"\x2d\xe1\x5d\x29\x41\x0b\x8d\x77\x67\x9c\x11\x0f\x1f\x8a"
_HDR_FMT = "<IIHHIIBBHI"


def hexstr(data):
    """Lower-case hex string of ``data`` (no ``hexdigest`` on MicroPython)."""
    return hexlify(data).decode()


def version_str(version):
    """Format ``(major, minor, revision, build)`` like Zephyr's img_mgmt does.

    ``img_mgmt_ver_str``: ``"%hu.%hu.%hu"`` with ``".%u"`` appended only when
    the build number is not 0, e.g. ``1.2.3`` or ``1.2.3.4``.
    """
    s = "%d.%d.%d" % (version[0], version[1], version[2])
    if version[3]:
        s += ".%d" % version[3]
    return s


def image_type(first_bytes):
    """``"MCUBOOT"`` when ``first_bytes`` start with the MCUboot image magic, else None.

    Mirrors nRF Connect SDK ``dfu_target_img_type``.
    """
    if len(first_bytes) >= 4 and struct.unpack_from("<I", first_bytes, 0)[0] == IMAGE_MAGIC:
        return "MCUBOOT"
    return None


class ImageInfo:
    """What an MCUboot image's header and TLVs say about it.

    Attributes: ``load_addr``, ``header_size``, ``protected_tlv_size`` (with its
    4-byte info header, 0 when absent), ``image_size``, ``flags``, ``version``
    (major, minor, revision, build), ``hash`` (the SHA-256 TLV value: the hash a
    device's image state list shows), ``tlvs`` and ``protected_tlvs`` (lists of
    ``(type, length)`` in file order), ``tlv_size`` (TLV area incl. its info
    header), ``security_counter`` (or None), ``total_size`` (header + image +
    TLV areas), ``file_size`` (bytes read, incl. any slot padding),
    ``padded`` (the file carries an MCUboot trailer after the TLVs),
    ``file_sha`` (SHA-256 of the whole file, what SMP upload sends as ``sha``;
    None from ``parse_header``), ``hash_verified`` (False only for encrypted
    images, whose hash is over the plaintext).
    """

    def __init__(self, load_addr, header_size, protected_tlv_size, image_size,
                 flags, version):
        self.load_addr = load_addr
        self.header_size = header_size
        self.protected_tlv_size = protected_tlv_size
        self.image_size = image_size
        self.flags = flags
        self.version = version
        self.hash = None
        self.tlvs = []
        self.protected_tlvs = []
        self.tlv_size = 0
        self.security_counter = None
        self.file_size = None
        self.file_sha = None
        self.padded = False
        self.hash_verified = False

    @property
    def version_str(self):
        """Version formatted as the device's image state list shows it."""
        return version_str(self.version)

    @property
    def hashed_size(self):
        """Bytes covered by the image hash: header + image + protected TLVs."""
        return self.header_size + self.image_size + self.protected_tlv_size

    @property
    def total_size(self):
        """Header + image + protected TLV area + TLV area."""
        return self.hashed_size + self.tlv_size

    @property
    def bootable(self):
        """False when the header has IMAGE_F_NON_BOOTABLE."""
        return not self.flags & IMAGE_F_NON_BOOTABLE

    @property
    def encrypted(self):
        """True when the image body is AES-encrypted."""
        return bool(self.flags & (IMAGE_F_ENCRYPTED_AES128 | IMAGE_F_ENCRYPTED_AES256))

    @property
    def signed(self):
        """True when the TLV area holds a signature (not checked here)."""
        for t, _ in self.tlvs:
            if t in _SIG_TLVS:
                return True
        return False

    def hash_hex(self):
        """The image hash as lower-case hex, or None."""
        return None if self.hash is None else hexstr(self.hash)

    def file_sha_hex(self):
        """The whole-file SHA-256 as lower-case hex, or None."""
        return None if self.file_sha is None else hexstr(self.file_sha)

    def __repr__(self):
        return "<ImageInfo %s %d bytes hash %s>" % (
            self.version_str, self.total_size, self.hash_hex())


def parse_header(buf):
    """Parse the 32-byte MCUboot image header at the start of ``buf``.

    Returns an :class:`ImageInfo` with the header fields set (no hash yet).
    Raises :class:`BadImage` naming what is wrong.
    """
    if len(buf) < IMAGE_HEADER_SIZE:
        raise BadImage("truncated image header: %d bytes (need %d)"
                       % (len(buf), IMAGE_HEADER_SIZE))
    (magic, load_addr, hdr_size, prot_size, img_size, flags,
     major, minor, rev, build) = struct.unpack_from(_HDR_FMT, buf, 0)
    if magic != IMAGE_MAGIC:
        if magic == 0x3DB8F396:
            raise BadImage("bad image magic 0x%08x: a big-endian image (expected "
                           "little-endian 0x%08x)" % (magic, IMAGE_MAGIC))
        raise BadImage("bad image magic 0x%08x (expected 0x%08x)" % (magic, IMAGE_MAGIC))
    if hdr_size < IMAGE_HEADER_SIZE:
        raise BadImage("bad header size %d (less than %d)" % (hdr_size, IMAGE_HEADER_SIZE))
    if prot_size and prot_size < TLV_INFO_SIZE:
        raise BadImage("bad protected TLV size %d" % prot_size)
    return ImageInfo(load_addr, hdr_size, prot_size, img_size, flags,
                     (major, minor, rev, build))


class _Reader:
    """Sequential reads of an image through one buffer, hashing as it goes.

    ``file_hash`` sees every byte; ``img_hash`` only while it is not None
    (header + image + protected TLVs).
    """

    def __init__(self, stream, buf, limit):
        self.stream = stream
        self.buf = buf
        self.mv = memoryview(buf)
        self.pos = 0
        self.limit = limit  # the file size when known, else None
        self.file_hash = sha256()
        self.img_hash = sha256()

    def _fill(self, n):
        # Read up to n bytes into buf[0:n]; returns how many (fewer only at EOF).
        got = 0
        mv = self.mv
        if n == len(self.buf):
            # Whole-buffer reads (the image body) pass buf itself: no memoryview
            # slice is allocated per chunk, so the GC stays quiet on boards.
            got = self.stream.readinto(self.buf) or 0
        while got < n:
            r = self.stream.readinto(mv[got:n])
            if not r:
                break
            got += r
        if got:
            chunk = self.buf if got == len(self.buf) else mv[:got]
            self.file_hash.update(chunk)
            if self.img_hash is not None:
                self.img_hash.update(chunk)
        self.pos += got
        return got

    def _take(self, n, what):
        # Fill buf[0:n] with the next n bytes, or raise BadImage (truncated).
        if self.limit is not None and self.pos + n > self.limit:
            raise BadImage("truncated image: %s needs %d bytes at offset %d, "
                           "file is %d bytes" % (what, n, self.pos, self.limit))
        got = self._fill(n)
        if got < n:
            raise BadImage("truncated image: %s at offset %d needs %d bytes, "
                           "file ends after %d" % (what, self.pos - got, n, got))

    def read(self, n, what):
        """buf[0:n] (a memoryview) filled with the next n bytes (n <= len(buf))."""
        self._take(n, what)
        return self.mv[:n]

    def skip(self, n, what):
        """Consume (and hash) the next n bytes."""
        size = len(self.buf)
        while n > 0:
            k = size if n > size else n
            self._take(k, what)
            n -= k

    def drain(self, tail):
        """Read to the end (or to ``limit``); returns bytes read.

        ``tail`` (16 bytes) receives the last 16 bytes read.
        """
        total = 0
        size = len(self.buf)
        mv = self.mv
        while True:
            k = size
            if self.limit is not None:
                left = self.limit - self.pos
                if left <= 0:
                    break
                if k > left:
                    k = left
            got = self._fill(k)
            if not got:
                if self.limit is not None:
                    raise BadImage("truncated image: file ends at offset %d, "
                                   "expected %d bytes" % (self.pos, self.limit))
                break
            total += got
            if got >= 16:
                tail[:] = mv[got - 16:got]
            else:
                tail[0:16 - got] = tail[got:16]
                tail[16 - got:16] = mv[0:got]
        return total


def _read_tlv_info(rd, expect_magic, what):
    v = rd.read(TLV_INFO_SIZE, what + " info")
    magic, tot = struct.unpack_from("<HH", v, 0)
    if magic != expect_magic:
        raise BadImage("bad %s magic 0x%04x at offset %d (expected 0x%04x)"
                       % (what, magic, rd.pos - TLV_INFO_SIZE, expect_magic))
    if tot < TLV_INFO_SIZE:
        raise BadImage("bad %s size %d at offset %d" % (what, tot, rd.pos - TLV_INFO_SIZE))
    return tot


def verify(stream, buf=None, size=None, allow_trailing=False):
    """Parse and check the MCUboot image read from ``stream``; return :class:`ImageInfo`.

    ``stream``: any object with ``readinto`` (a file opened ``"rb"``); it is read
    once, sequentially, to its end (or to ``size`` bytes), never seeked.
    ``buf``: the work buffer (a bytearray of at least 32 bytes; 512 bytes are
    allocated when None). Memory use does not depend on the image size.
    ``size``: the file length when known; a shorter or longer image is an error.
    ``allow_trailing``: accept bytes after the TLV area that are not an
    MCUboot trailer (imgtool ``--pad`` output is always accepted).

    Checks the header and TLV magics, that every TLV fits its area, and that the
    SHA-256 TLV equals the hash of header + image + protected TLVs (skipped,
    with ``hash_verified`` False, for encrypted images). Raises
    :class:`BadImage` naming the problem.
    """
    if buf is None:
        buf = bytearray(_DEFAULT_BUF)
    if len(buf) < IMAGE_HEADER_SIZE:
        raise ValueError("buffer must hold at least %d bytes" % IMAGE_HEADER_SIZE)
    rd = _Reader(stream, buf, size)
    info = parse_header(rd.read(IMAGE_HEADER_SIZE, "image header"))
    rd.skip(info.header_size - IMAGE_HEADER_SIZE, "header padding")
    rd.skip(info.image_size, "image body")

    if info.protected_tlv_size:
        end = rd.pos + info.protected_tlv_size
        tot = _read_tlv_info(rd, TLV_PROT_INFO_MAGIC, "protected TLV")
        if tot != info.protected_tlv_size:
            raise BadImage("protected TLV area size %d does not match header's %d"
                           % (tot, info.protected_tlv_size))
        while rd.pos < end:
            t, n = _tlv_entry(rd, end, "protected TLV")
            info.protected_tlvs.append((t, n))
            if t == TLV_SEC_CNT and n == 4:
                info.security_counter = struct.unpack_from("<I", rd.read(4, "SEC_CNT"), 0)[0]
            else:
                rd.skip(n, "protected TLV 0x%02x" % t)
    digest = rd.img_hash.digest()
    rd.img_hash = None

    v = rd.read(TLV_INFO_SIZE, "TLV info")
    magic = struct.unpack_from("<H", v, 0)[0]
    if magic == TLV_PROT_INFO_MAGIC and not info.protected_tlv_size:
        raise BadImage("protected TLV area at offset %d but the header says "
                       "protected_tlv_size 0" % (rd.pos - TLV_INFO_SIZE))
    if magic != TLV_INFO_MAGIC:
        raise BadImage("bad TLV info magic 0x%04x at offset %d (expected 0x%04x)"
                       % (magic, rd.pos - TLV_INFO_SIZE, TLV_INFO_MAGIC))
    tot = struct.unpack_from("<H", v, 2)[0]
    if tot < TLV_INFO_SIZE:
        raise BadImage("bad TLV area size %d" % tot)
    info.tlv_size = tot
    end = rd.pos - TLV_INFO_SIZE + tot
    other_hash = None
    while rd.pos < end:
        t, n = _tlv_entry(rd, end, "TLV")
        info.tlvs.append((t, n))
        if t == TLV_SHA256:
            if info.hash is not None:
                raise BadImage("more than one SHA256 TLV")
            if n != _HASH_SIZE:
                raise BadImage("SHA256 TLV has length %d (expected %d)" % (n, _HASH_SIZE))
            info.hash = bytes(rd.read(n, "SHA256 TLV"))
        else:
            if t == TLV_SHA384 or t == TLV_SHA512:
                other_hash = t
            rd.skip(n, "TLV 0x%02x" % t)

    if info.hash is None:
        if other_hash is not None:
            raise BadImage("image hash TLV is SHA-%d (0x%02x); only SHA-256 images "
                           "are supported" % (384 if other_hash == TLV_SHA384 else 512,
                                              other_hash))
        raise BadImage("missing SHA256 TLV")
    if info.encrypted:
        # imgtool hashes the plaintext, then encrypts: nothing to compare here.
        info.hash_verified = False
    elif digest != info.hash:
        raise BadImage("image hash mismatch: SHA256 TLV %s, computed %s"
                       % (hexstr(info.hash), hexstr(digest)))
    else:
        info.hash_verified = True

    tail = bytearray(16)
    extra = rd.drain(tail)
    if extra:
        if extra >= 16 and (tail == _BOOT_MAGIC or tail[2:] == _BOOT_MAGIC_ALT_TAIL):
            info.padded = True
        elif not allow_trailing:
            raise BadImage("%d bytes of trailing data after the TLV area (image ends "
                           "at offset %d)" % (extra, info.total_size))
    if size is not None and rd.stream.readinto(rd.mv[:1]):
        raise BadImage("file is longer than the given size %d" % size)
    info.file_size = rd.pos
    info.file_sha = rd.file_hash.digest()
    return info


def _tlv_entry(rd, end, what):
    if rd.pos + TLV_SIZE > end:
        raise BadImage("%s entry header at offset %d overruns the area (ends at %d)"
                       % (what, rd.pos, end))
    t, n = struct.unpack_from("<HH", rd.read(TLV_SIZE, what + " entry"), 0)
    if rd.pos + n > end:
        raise BadImage("%s 0x%02x of length %d at offset %d overruns the area (ends at %d)"
                       % (what, t, n, rd.pos - TLV_SIZE, end))
    return t, n


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
