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

# 0x96f3b83d, as the 4 bytes a little-endian image starts with: compared as
# bytes, since builds without long ints (small CircuitPython boards) cannot
# even compile the number.
IMAGE_MAGIC = b"\x3d\xb8\xf3\x96"
IMAGE_HEADER_SIZE = const(32)
_TLV_INFO_MAGIC = const(0x6907)
_TLV_PROT_INFO_MAGIC = const(0x6908)
_TLV_INFO_SIZE = const(4)
_TLV_SIZE = const(4)

# Header flags (bootutil/image.h, IMAGE_F_*).
_IMAGE_F_PIC = const(0x01)
_IMAGE_F_ENCRYPTED_AES128 = const(0x04)
_IMAGE_F_ENCRYPTED_AES256 = const(0x08)
IMAGE_F_NON_BOOTABLE = const(0x10)
_IMAGE_F_RAM_LOAD = const(0x20)
_IMAGE_F_ROM_FIXED = const(0x100)
_IMAGE_F_COMPRESSED_LZMA1 = const(0x200)
_IMAGE_F_COMPRESSED_LZMA2 = const(0x400)
_IMAGE_F_COMPRESSED_ARM_THUMB = const(0x800)

# TLV types this module acts on (bootutil/image.h, IMAGE_TLV_*); the host CLI
# holds the names of all of them (for printing; a board never needs them).
_TLV_SHA256 = const(0x10)
_TLV_SHA384 = const(0x11)
_TLV_SHA512 = const(0x12)
_TLV_SEC_CNT = const(0x50)
# the signature TLVs, 0x20..0x25: RSA2048_PSS, ECDSA224, ECDSA_SIG, RSA3072_PSS, ED25519, SIG_PURE
_TLV_SIG_FIRST = const(0x20)
_TLV_SIG_LAST = const(0x25)
_HASH_SIZE = const(32)
_DEFAULT_BUF = const(512)
# (Constants that are not numbers live in the one function using them: a
# module-level name costs heap on a board, even a private one.)


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
        return bool(self.flags & (_IMAGE_F_ENCRYPTED_AES128 | _IMAGE_F_ENCRYPTED_AES256))

    @property
    def signed(self):
        """True when the TLV area holds a signature (not checked here)."""
        for t, _ in self.tlvs:
            if _TLV_SIG_FIRST <= t <= _TLV_SIG_LAST:
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
    if bytes(buf[0:4]) != IMAGE_MAGIC:
        found = "0x%02x%02x%02x%02x" % (buf[3], buf[2], buf[1], buf[0])
        if bytes(buf[0:4]) == b"\x96\xf3\xb8\x3d":
            raise BadImage("bad image magic %s: a big-endian image (expected "
                           "little-endian 0x96f3b83d)" % found)
        raise BadImage("bad image magic %s (expected 0x96f3b83d)" % found)
    (load_addr, hdr_size, prot_size, img_size, flags,
     major, minor, rev, build) = struct.unpack_from("<4xIHHIIBBHI", buf, 0)  # the header after its magic
    if hdr_size < IMAGE_HEADER_SIZE:
        raise BadImage("bad header size %d (less than %d)" % (hdr_size, IMAGE_HEADER_SIZE))
    if prot_size and prot_size < _TLV_INFO_SIZE:
        raise BadImage("bad protected TLV size %d" % prot_size)
    return ImageInfo(load_addr, hdr_size, prot_size, img_size, flags,
                     (major, minor, rev, build))


# ImageVerifier.fault: what failed, a number servers map to their error codes.
# Private here (a board's update never looks at it: no names in its heap); the
# public names are mcuboot_scan.FAULT_*, with the same numbers.
_F_HEADER = const(1)  # bad magic, header size...
_F_TLV_AREA = const(2)  # a TLV info header (magic, size)
_F_TLV = const(3)  # a TLV entry overruns its area
_F_HASHES = const(4)  # more than one SHA256 TLV
_F_HASH_SIZE = const(5)  # a SHA256 TLV that is not 32 bytes
_F_NO_HASH = const(6)  # no SHA256 TLV
_F_HASH = const(7)  # the SHA256 TLV does not match the image
_F_TRUNCATED = const(8)  # the bytes ended inside the image

# ImageVerifier states: what the bytes being fed are.
_S_HEADER = const(0)  # the 32-byte header (collected)
_S_BODY = const(1)  # header padding + image body (passed through, hashed)
_S_PINFO = const(2)  # protected TLV info (collected)
_S_PTLV = const(3)  # a protected TLV entry header (collected)
_S_PVAL = const(4)  # the SEC_CNT value (collected)
_S_PSKIP = const(5)  # another protected TLV value (passed)
_S_TINFO = const(6)  # TLV info (collected)
_S_TLV = const(7)  # a TLV entry header (collected)
_S_TVAL = const(8)  # the SHA256 TLV value (collected)
_S_TSKIP = const(9)  # another TLV value (passed)
_S_TRAIL = const(10)  # after the TLV area: slot padding or garbage
_S_FAILED = const(11)


class ImageVerifier:
    """Push-style MCUboot image check: :meth:`feed` bytes as they come, in any split.

    The one header/TLV walker of the package (the file check, the streaming
    upload, the portable server and the emulated bootloader all use it). It
    keeps a 32-byte buffer for the header and TLV fields and a 16-byte tail,
    whatever the image size: nothing is allocated per :meth:`feed` except
    memoryview slices.

    ``size``: the file length when known (more bytes is an error, fewer is
    reported by :meth:`finish`); ``allow_trailing``: accept bytes after the
    TLV area that are not an MCUboot trailer. A problem found while feeding is
    kept in :attr:`error` (parsing stops; the whole-file SHA-256 goes on) and
    raised by :meth:`finish`.
    """

    def __init__(self, size=None, allow_trailing=False):
        self._buf = bytearray(IMAGE_HEADER_SIZE)
        self._tail = bytearray(16)
        self.start(size, allow_trailing)

    def start(self, size=None, allow_trailing=False):
        """Forget everything fed so far: check a new image with the same buffers."""
        self.size = size
        self.allow_trailing = allow_trailing
        self.info = None
        self.error = None
        self.fault = None  # what failed, for servers mapping it to an error code: see mcuboot_scan.FAULT_*
        self.skipped = False  # bytes were skipped (see skip): no hash can be checked
        self.pos = 0  # bytes fed
        self._state = _S_HEADER
        self._need = IMAGE_HEADER_SIZE  # collect: bytes wanted; pass: bytes left
        self._have = 0
        self._end = 0  # end offset of the TLV area being walked
        self._other_hash = None
        self._extra = 0
        self._digest = None
        self._file_hash = sha256()
        self._img_hash = sha256()  # None once past the hashed part

    @property
    def complete(self):
        """True once the TLV area has been read whole and found good."""
        return self._state == _S_TRAIL and self.error is None

    def feed(self, buf):
        """Check the next ``len(buf)`` bytes of the image (``buf`` is not kept)."""
        n = len(buf)
        if not n:
            return
        self._file_hash.update(buf)
        if self.size is not None and self.pos + n > self.size and self.error is None:
            self.error = BadImage("file is longer than the given size %d" % self.size)
            self._state = _S_FAILED
        i = 0
        mv = None
        while i < n:
            st = self._state
            if st == _S_FAILED:
                break
            k = n - i
            collect = st != _S_BODY and st != _S_PSKIP and st != _S_TSKIP and st != _S_TRAIL
            if st != _S_TRAIL:
                left = self._need - self._have if collect else self._need
                if k > left:
                    k = left
            if i == 0 and k == n:
                piece = buf
            else:
                if mv is None:
                    mv = memoryview(buf)
                piece = mv[i:i + k]
            if self._img_hash is not None:
                self._img_hash.update(piece)
            i += k
            self.pos += k
            if st == _S_TRAIL:
                self._keep_tail(piece, k)
                continue
            if collect:
                self._buf[self._have:self._have + k] = piece
                self._have += k
                if self._have < self._need:
                    continue
                self._have = 0
            else:
                self._need -= k
                if self._need:
                    continue
            try:
                self._advance(st)
            except BadImage as e:
                self._fail(e, st)

    def _fail(self, e, st):
        if self.fault is None:
            if st == _S_HEADER:
                self.fault = _F_HEADER
            elif st == _S_PINFO or st == _S_TINFO:
                self.fault = _F_TLV_AREA
            else:
                self.fault = _F_TLV
        self.error = e
        self._state = _S_FAILED

    @property
    def pass_left(self):
        """Bytes of body or TLV value the walk does not look into, next (0 when it needs the next bytes)."""
        st = self._state
        return self._need if st == _S_BODY or st == _S_PSKIP or st == _S_TSKIP else 0

    @property
    def collect_left(self):
        """Bytes the walk still needs for the field it is reading (0 when passing or done)."""
        st = self._state
        if st == _S_BODY or st == _S_PSKIP or st == _S_TSKIP or st >= _S_TRAIL:
            return 0
        return self._need - self._have

    def skip(self, n):
        """Go past ``n`` bytes of :attr:`pass_left` without reading them.

        For random-access storage (a flash slot): the header and TLVs are
        walked, the body is not read, so no hash is checked
        (``hash_verified`` False) and ``file_sha`` is None.
        """
        if n > self.pass_left:
            raise ValueError("can skip %d bytes here, not %d" % (self.pass_left, n))
        self.skipped = True
        self.pos += n
        self._need -= n
        if not self._need:
            try:
                self._advance(self._state)
            except BadImage as e:
                self._fail(e, self._state)

    def _keep_tail(self, piece, k):
        # The last 16 bytes after the TLV area tell slot padding from garbage.
        tail = self._tail
        self._extra += k
        if k >= 16:
            tail[:] = piece[k - 16:k]
        else:
            tail[0:16 - k] = tail[k:16]
            tail[16 - k:16] = piece

    def _collect(self, state, n):
        self._state = state
        self._need = n
        self._have = 0

    def _pass(self, state, n):
        # Pass n bytes (a body or a TLV value); with n == 0 go on at once.
        self._state = state
        self._need = n
        if not n:
            self._advance(state)

    def _advance(self, st):
        # A region is complete: check it and say what comes next.
        buf = self._buf
        info = self.info
        if st == _S_HEADER:
            self.info = info = parse_header(buf)
            self._pass(_S_BODY, info.header_size - IMAGE_HEADER_SIZE + info.image_size)
        elif st == _S_BODY:
            self._after_body()
        elif st == _S_PINFO or st == _S_TINFO:
            self._area(st == _S_PINFO)
        elif st == _S_PTLV or st == _S_TLV:
            self._entry(st == _S_PTLV)
        elif st == _S_PVAL:
            info.security_counter = struct.unpack_from("<I", buf, 0)[0]
            self._next_entry(True)
        elif st == _S_TVAL:
            info.hash = bytes(buf)
            self._next_entry(False)
        else:  # _S_PSKIP, _S_TSKIP
            self._next_entry(st == _S_PSKIP)

    def _after_body(self):
        if self.info.protected_tlv_size:
            self._collect(_S_PINFO, _TLV_INFO_SIZE)
        else:
            self._end_hashed()

    def _end_hashed(self):
        self._digest = None if self.skipped else self._img_hash.digest()
        self._img_hash = None
        self._collect(_S_TINFO, _TLV_INFO_SIZE)

    def _area(self, prot):
        info = self.info
        at = self.pos - _TLV_INFO_SIZE
        magic, tot = struct.unpack_from("<HH", self._buf, 0)
        if prot:
            if magic != _TLV_PROT_INFO_MAGIC:
                raise BadImage("bad protected TLV magic 0x%04x at offset %d (expected 0x%04x)"
                               % (magic, at, _TLV_PROT_INFO_MAGIC))
            if tot < _TLV_INFO_SIZE:
                raise BadImage("bad protected TLV size %d at offset %d" % (tot, at))
            if tot != info.protected_tlv_size:
                raise BadImage("protected TLV area size %d does not match header's %d"
                               % (tot, info.protected_tlv_size))
        else:
            if magic == _TLV_PROT_INFO_MAGIC and not info.protected_tlv_size:
                raise BadImage("protected TLV area at offset %d but the header says "
                               "protected_tlv_size 0" % at)
            if magic != _TLV_INFO_MAGIC:
                raise BadImage("bad TLV info magic 0x%04x at offset %d (expected 0x%04x)"
                               % (magic, at, _TLV_INFO_MAGIC))
            if tot < _TLV_INFO_SIZE:
                raise BadImage("bad TLV area size %d" % tot)
            info.tlv_size = tot
        self._end = at + tot
        self._next_entry(prot)

    def _next_entry(self, prot):
        end = self._end
        if self.pos < end:
            if self.pos + _TLV_SIZE > end:
                raise BadImage("%s entry header at offset %d overruns the area (ends at %d)"
                               % ("protected TLV" if prot else "TLV", self.pos, end))
            self._collect(_S_PTLV if prot else _S_TLV, _TLV_SIZE)
        elif prot:
            self._end_hashed()
        else:
            self._check_hash()
            self._state = _S_TRAIL

    def _entry(self, prot):
        info = self.info
        t, n = struct.unpack_from("<HH", self._buf, 0)
        if self.pos + n > self._end:
            raise BadImage("%s 0x%02x of length %d at offset %d overruns the area (ends at %d)"
                           % ("protected TLV" if prot else "TLV", t, n, self.pos - _TLV_SIZE, self._end))
        if prot:
            info.protected_tlvs.append((t, n))
            if t == _TLV_SEC_CNT and n == 4:
                self._collect(_S_PVAL, 4)
            else:
                self._pass(_S_PSKIP, n)
            return
        info.tlvs.append((t, n))
        if t == _TLV_SHA256:
            if info.hash is not None:
                self.fault = _F_HASHES
                raise BadImage("more than one SHA256 TLV")
            if n != _HASH_SIZE:
                self.fault = _F_HASH_SIZE
                raise BadImage("SHA256 TLV has length %d (expected %d)" % (n, _HASH_SIZE))
            self._collect(_S_TVAL, _HASH_SIZE)
        else:
            if t == _TLV_SHA384 or t == _TLV_SHA512:
                self._other_hash = t
            self._pass(_S_TSKIP, n)

    def _check_hash(self):
        info = self.info
        if info.hash is None:
            self.fault = _F_NO_HASH
            t = self._other_hash
            if t is not None:
                raise BadImage("image hash TLV is SHA-%d (0x%02x); only SHA-256 images "
                               "are supported" % (384 if t == _TLV_SHA384 else 512, t))
            raise BadImage("missing SHA256 TLV")
        if info.encrypted or self.skipped:
            # imgtool hashes the plaintext, then encrypts: nothing to compare here.
            info.hash_verified = False
        elif self._digest != info.hash:
            self.fault = _F_HASH
            raise BadImage("image hash mismatch: SHA256 TLV %s, computed %s"
                           % (hexstr(info.hash), hexstr(self._digest)))
        else:
            info.hash_verified = True

    def finish(self):
        """Return the :class:`ImageInfo` of what was fed; raise :class:`BadImage` naming the problem."""
        if self.error is not None:
            raise self.error
        st = self._state
        if st != _S_TRAIL:
            self.fault = _F_TRUNCATED
            if st == _S_HEADER:
                raise BadImage("truncated image header: %d bytes (need %d)" % (self._have, IMAGE_HEADER_SIZE))
            # Named by what the image needs (where the cut item ends), not by a read.
            passing = st == _S_BODY or st == _S_PSKIP or st == _S_TSKIP
            end = self.pos + (self._need if passing else self._need - self._have)
            what = ("image header", "image body", "protected TLV info", "protected TLV entry", "SEC_CNT",
                    "protected TLV", "TLV info", "TLV entry", "SHA256 TLV", "TLV")[st]  # by _S_* state
            raise BadImage("truncated image: the %s runs to offset %d; the file ends after %d bytes"
                           % (what, end, self.pos))
        if self.size is not None and self.pos < self.size:
            raise BadImage("truncated image: file ends at offset %d, expected %d bytes" % (self.pos, self.size))
        info = self.info
        extra = self._extra
        if extra:
            tail = self._tail
            # The last 16 bytes of an image padded to its slot (imgtool --pad): the standard
            # boot magic, or (max_align > 8) 2 bytes of alignment + 14 fixed bytes.
            if extra >= 16 and (tail == b"\x77\xc2\x95\xf3\x60\xd2\xef\x7f\x35\x52\x50\x0f\x2c\xb6\x79\x80"
                                or tail[2:] == b"\x2d\xe1\x5d\x29\x41\x0b\x8d\x77\x67\x9c\x11\x0f\x1f\x8a"):
                info.padded = True
            elif not self.allow_trailing:
                raise BadImage("%d bytes of trailing data after the TLV area (image ends "
                               "at offset %d)" % (extra, info.total_size))
        info.file_size = self.pos
        info.file_sha = None if self.skipped else self._file_hash.digest()
        return info


def verify(stream, buf=None, size=None, allow_trailing=False):
    """Parse and check the MCUboot image read from ``stream``; return :class:`ImageInfo`.

    ``stream``: any object with ``readinto`` (a file opened ``"rb"``); it is read
    once, sequentially, to its end (or to ``size`` bytes), never seeked.
    ``buf``: the read buffer (a bytearray of at least 32 bytes; 512 bytes are
    allocated when None). Memory use does not depend on the image size.
    ``size``: the file length when known; a shorter or longer image is an error.
    ``allow_trailing``: accept bytes after the TLV area that are not an
    MCUboot trailer (imgtool ``--pad`` output is always accepted).

    Checks the header and TLV magics, that every TLV fits its area, and that the
    SHA-256 TLV equals the hash of header + image + protected TLVs (skipped,
    with ``hash_verified`` False, for encrypted images): it feeds an
    :class:`ImageVerifier`. Raises :class:`BadImage` naming the problem.
    """
    if buf is None:
        buf = bytearray(_DEFAULT_BUF)
    if len(buf) < IMAGE_HEADER_SIZE:
        raise ValueError("buffer must hold at least %d bytes" % IMAGE_HEADER_SIZE)
    v = ImageVerifier(size, allow_trailing)
    mv = memoryview(buf)
    full = len(buf)
    while size is None or v.pos < size:
        want = full if size is None or size - v.pos >= full else size - v.pos
        # Whole-buffer reads pass buf itself: no slice allocated per block.
        n = stream.readinto(buf if want == full else mv[:want])
        if not n:
            break
        v.feed(buf if n == full else mv[:n])
        if v.error is not None:
            break
    info = v.finish()
    if size is not None and stream.readinto(mv[:1]):
        raise BadImage("file is longer than the given size %d" % size)
    return info
