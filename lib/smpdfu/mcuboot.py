"""MCUboot image parsing and verification, streaming and in constant memory.

An MCUboot image (as ``imgtool sign`` writes it) is, little-endian::

    header (32 bytes, padded to hdr_size) | image (img_size bytes)
    | protected TLV area (magic 0x6908, optional, prot_tlv_size bytes)
    | TLV area (magic 0x6907; holds the SHA-256 of everything before it)
    | optional trailer padding up to the slot size (``imgtool --pad``)

``verify()`` reads such a file once, front to back, through one small buffer:
it checks the structure and the image hash, and also computes the SHA-256 of
the whole file, which is what the SMP upload command sends as ``sha``.
Signatures are not checked (boards have no public-key crypto; MCUboot checks
them itself before booting). What only hosts need (``scan``, ``parse_header``,
``signed``...) is in :mod:`smpdfu.mcuboot_scan`; the error texts are in
:mod:`smpdfu.mcuboot_errors`, loaded only when a check fails.
"""

import struct
from binascii import hexlify

from .compat import const, sha256

# 0x96f3b83d, as the 4 bytes a little-endian image starts with: compared as
# bytes, since builds without long ints (small CircuitPython boards) cannot
# even compile the number.
IMAGE_MAGIC = b"\x3d\xb8\xf3\x96"
IMAGE_HEADER_SIZE = const(32)
_TLV_INFO_MAGIC = const(0x6907)
_TLV_PROT_INFO_MAGIC = const(0x6908)
_IMAGE_F_ENCRYPTED = const(0x0C)  # IMAGE_F_ENCRYPTED_AES128 | _AES256 (bootutil/image.h)
_TLV_SHA256 = const(0x10)
_TLV_SEC_CNT = const(0x50)
_HASH_SIZE = const(32)

# What the walk is reading (ImageVerifier._state). Fields below _S_BODY are
# collected into the 32-byte buffer; _S_BODY and _S_SKIP are passed through.
_S_HEADER = const(0)  # the 32-byte header
_S_INFO = const(1)  # a TLV area's 4-byte info header
_S_ENTRY = const(2)  # a TLV entry's 4-byte header (type, length)
_S_VALUE = const(3)  # the SEC_CNT value (protected area) or the SHA256 TLV value
_S_BODY = const(4)  # header padding + image body
_S_SKIP = const(5)  # a TLV value not looked into
_S_TRAIL = const(6)  # after the TLV area: slot padding or garbage
_S_FAILED = const(7)

# What a check found wrong (texts in mcuboot_errors, which defines the same
# names: test_mcuboot checks). The high nibble is the error's fault, the
# numbers mcuboot_scan names FAULT_* (0: no fault number).
_E_LONGER = const(0x01)  # more bytes than the given size
_E_TRAILING = const(0x02)  # bytes after the TLV area that are no slot trailer
_E_MAGIC = const(0x10)  # the image magic
_E_HEADER = const(0x11)  # the header size or protected TLV size in the header
_E_INFO = const(0x20)  # a TLV info header: magic, size
_E_ENTRY = const(0x30)  # a TLV entry header overruns its area
_E_VALUE = const(0x31)  # a TLV value overruns its area
_E_HASHES = const(0x40)  # more than one SHA256 TLV
_E_HASH_SIZE = const(0x50)  # a SHA256 TLV that is not 32 bytes
_E_NO_HASH = const(0x60)  # no SHA256 TLV
_E_HASH = const(0x70)  # the SHA256 TLV does not match the image
_E_TRUNCATED = const(0x80)  # the bytes ended inside the image


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
    """What an MCUboot image's header and TLVs say about it (plain attributes).

    ``load_addr``, ``header_size``, ``protected_tlv_size`` (with its 4-byte
    info header, 0 when absent), ``image_size``, ``flags``, ``version``
    (major, minor, revision, build), ``version_str`` (as the device's image
    state list shows it), ``hash`` (the SHA-256 TLV value: the hash that list
    shows), ``tlvs`` and ``protected_tlvs`` (lists of ``(type, length)`` in
    file order), ``tlv_size`` (TLV area incl. its info header),
    ``total_size`` (header + image + TLV areas; the TLV area counts once
    read), ``security_counter`` (or None), ``file_size`` (bytes read, incl.
    any slot padding), ``padded`` (the file carries an MCUboot trailer after
    the TLVs), ``file_sha`` (SHA-256 of the whole file, what SMP upload sends
    as ``sha``; None from a header alone), ``hash_verified`` (False for
    encrypted images, whose hash is over the plaintext, and for a scan).
    """

    def __init__(self, load_addr, header_size, protected_tlv_size, image_size, flags, version):
        self.load_addr = load_addr
        self.header_size = header_size
        self.protected_tlv_size = protected_tlv_size
        self.image_size = image_size
        self.flags = flags
        self.version = version
        self.version_str = version_str(version)
        self.total_size = header_size + image_size + protected_tlv_size
        self.hash = None
        self.tlvs = []
        self.protected_tlvs = []
        self.tlv_size = 0
        self.security_counter = None
        self.file_size = None
        self.file_sha = None
        self.padded = False
        self.hash_verified = False

    def hash_hex(self):
        """The image hash as lower-case hex, or None."""
        return None if self.hash is None else hexstr(self.hash)


class ImageVerifier:
    """Push-style MCUboot image check: :meth:`feed` bytes as they come, in any split.

    The one header/TLV walker of the package (the file check, the streaming
    upload, the portable server and the emulated bootloader all use it). It
    keeps one 64-byte buffer (the header or TLV field being read, the image
    hash, the last bytes after the TLV area) and few attributes, whatever the
    image size: nothing is allocated per :meth:`feed` except memoryview slices.
    One verifier checks one image (a new image: a new verifier).

    ``size``: the file length when known (more bytes is an error, fewer is
    reported by :meth:`finish`); ``allow_trailing``: accept bytes after the
    TLV area that are not an MCUboot trailer. A problem found while feeding is
    kept in ``error`` (parsing stops; the whole-file SHA-256 goes on) and
    raised by :meth:`finish`; ``error.fault`` then says what failed, as a
    number (``mcuboot_scan.FAULT_*``, for servers mapping it to an error code).
    ``pass_left``: bytes of body or TLV value next that the walk does not look
    into (see :meth:`skip`); ``collect_left``: bytes the walk still needs for
    the field it is reading; both 0 once the walk is over (the TLV area read
    whole, or an error); ``pos``: bytes fed.
    """

    allow_trailing = False  # an instance attribute only when True: each one costs a board heap

    def __init__(self, size=None, allow_trailing=False):
        # [0:32]: the field being read, right-aligned (one of n bytes fills
        # [32-n:32]: no count of its bytes is kept); [32:64]: the SHA-256 of
        # the hashed part once read, until the TLV area's end compares it;
        # [48:64] then: the last 16 bytes after the TLV area.
        self._buf = bytearray(64)
        if allow_trailing:
            self.allow_trailing = True
        self.size = size
        self.info = self.error = None
        self.skipped = False  # bytes went by unread (see skip): no hash checked
        self.pos = self.pass_left = self._end = 0  # _end: where the TLV area being walked ends
        self.collect_left = IMAGE_HEADER_SIZE
        self._state = _S_HEADER
        self._file_hash = sha256()
        self._img_hash = sha256()  # None once past the hashed part (header..protected TLVs)

    def feed(self, buf):
        """Check the next ``len(buf)`` bytes of the image (``buf`` is not kept)."""
        n = len(buf)
        self._file_hash.update(buf)
        if self.size is not None and self.pos + n > self.size and self.error is None:
            self._bad(_E_LONGER, self.size)
        i = 0
        mv = None
        while i < n:
            st = self._state
            if st == _S_FAILED:
                break
            k = n - i
            if st < _S_BODY:
                left = self.collect_left
            else:
                left = self.pass_left if st < _S_TRAIL else k
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
                # The last 16 bytes after the TLV area tell slot padding from garbage.
                b = self._buf
                if k >= 16:
                    b[48:64] = piece[k - 16:k]
                else:
                    b[48:64 - k] = b[48 + k:64]
                    b[64 - k:64] = piece
            elif st < _S_BODY:
                self._buf[32 - left:32 - left + k] = piece
                self.collect_left = left = left - k
                if not left:
                    self._advance(st)
            else:
                self.pass_left -= k
                if not self.pass_left:
                    self._advance(st)

    def skip(self, n):
        """Go past ``n`` bytes of ``pass_left`` without reading them.

        For random-access storage (a flash slot): the header and TLVs are
        walked, the body is not read, so no hash is checked
        (``hash_verified`` False) and ``file_sha`` is None.
        """
        if n > self.pass_left:
            raise ValueError("skip %d > pass_left %d" % (n, self.pass_left))
        if not n:
            return
        self.skipped = True
        self.pos += n
        self.pass_left -= n
        if not self.pass_left:
            self._advance(self._state)

    def _bad(self, code, *args):
        # A check failed: keep the error for finish (the walk stops); the
        # texts load only now.
        from .mcuboot_errors import bad

        self.error = e = bad(self, code, args)
        self._state = _S_FAILED
        self.pass_left = self.collect_left = 0
        return e

    def _advance(self, st):
        # The region st is whole: check it, then set up the next one (a
        # region of 0 bytes to pass is whole at once: the loop goes on).
        # One function for the whole walk: each def costs heap on a board.
        # A 4-byte field is in buf[28:32], a 32-byte one in buf[0:32].
        buf = self._buf
        info = self.info
        while True:
            prot = self._img_hash is not None  # before the hashed part's end: in a TLV state, the protected area
            if st == _S_HEADER:
                if bytes(buf[0:4]) != IMAGE_MAGIC:
                    return self._bad(_E_MAGIC, bytes(buf[0:4]))
                addr, hdr, psize, isize, flags = struct.unpack_from("<IHHII", buf, 4)
                if hdr < IMAGE_HEADER_SIZE or 0 < psize < 4:
                    return self._bad(_E_HEADER, hdr, psize)
                # the version: major, minor, revision, build
                self.info = info = ImageInfo(addr, hdr, psize, isize, flags, struct.unpack_from("<BBHI", buf, 20))
                st, n = _S_BODY, hdr - IMAGE_HEADER_SIZE + isize
            elif st == _S_BODY and info.protected_tlv_size:
                st, n = _S_INFO, 4
            elif st == _S_ENTRY:
                t, n = struct.unpack_from("<HH", buf, 28)
                if self.pos + n > self._end:
                    return self._bad(_E_VALUE, t, n, self.pos - 4, self._end)
                st = _S_SKIP
                if prot:
                    info.protected_tlvs.append((t, n))
                    if t == _TLV_SEC_CNT and n == 4:
                        st = _S_VALUE
                else:
                    info.tlvs.append((t, n))
                    if t == _TLV_SHA256:
                        if info.hash is not None:
                            return self._bad(_E_HASHES)
                        if n != _HASH_SIZE:
                            return self._bad(_E_HASH_SIZE, n)
                        st = _S_VALUE
            else:  # a TLV info, a value, a skipped value, a body without protected TLVs: the next entry
                pos = self.pos
                if st == _S_INFO:
                    magic, tot = struct.unpack_from("<HH", buf, 28)
                    if (magic != (_TLV_PROT_INFO_MAGIC if prot else _TLV_INFO_MAGIC) or tot < 4
                            or prot and tot != info.protected_tlv_size):
                        return self._bad(_E_INFO, magic, tot, pos - 4)
                    self._end = pos - 4 + tot
                    if not prot:
                        info.tlv_size = tot
                        info.total_size += tot
                elif st == _S_VALUE:
                    if prot:
                        info.security_counter = struct.unpack_from("<I", buf, 28)[0]
                    else:
                        info.hash = bytes(buf[0:32])
                elif st == _S_BODY:
                    self._end = pos  # no protected area: it ends here
                end = self._end
                if pos < end:
                    if pos + 4 > end:
                        return self._bad(_E_ENTRY, pos, end)
                    st, n = _S_ENTRY, 4
                elif prot:  # the hashed part ends: the TLV area follows
                    if not self.skipped:
                        buf[32:64] = self._img_hash.digest()
                    self._img_hash = None
                    st, n = _S_INFO, 4
                else:
                    if info.hash is None:
                        return self._bad(_E_NO_HASH)
                    # imgtool hashes the plaintext, then encrypts: nothing to compare then.
                    if not (info.flags & _IMAGE_F_ENCRYPTED or self.skipped):
                        if buf[32:64] != info.hash:
                            return self._bad(_E_HASH)
                        info.hash_verified = True
                    self._state = _S_TRAIL
                    return
            self._state = st
            if st < _S_BODY:
                self.collect_left = n
                return
            if n:
                self.pass_left = n
                return

    def finish(self):
        """Return the :class:`ImageInfo` of what was fed; raise :class:`~smpdfu.errors.BadImage` naming the problem."""
        if self.error is not None:
            raise self.error
        info = self.info
        if self._state != _S_TRAIL or self.size is not None and self.pos < self.size:
            raise self._bad(_E_TRUNCATED)
        extra = self.pos - info.total_size
        if extra:
            tail = self._buf[48:64]
            # The last 16 bytes of an image padded to its slot (imgtool --pad): the standard
            # boot magic, or (max_align > 8) 2 bytes of alignment + 14 fixed bytes.
            if extra >= 16 and (tail == b"\x77\xc2\x95\xf3\x60\xd2\xef\x7f\x35\x52\x50\x0f\x2c\xb6\x79\x80"
                                or tail[2:] == b"\x2d\xe1\x5d\x29\x41\x0b\x8d\x77\x67\x9c\x11\x0f\x1f\x8a"):
                info.padded = True
            elif not self.allow_trailing:
                raise self._bad(_E_TRAILING, extra, info.total_size)
        info.file_size = self.pos
        info.file_sha = None if self.skipped else self._file_hash.digest()
        return info


def verify(stream, buf=None, size=None, allow_trailing=False):
    """Parse and check the MCUboot image read from ``stream``; return :class:`ImageInfo`.

    ``stream``: any object with ``readinto`` (a file opened ``"rb"``); it is read
    once, sequentially, to its end, never seeked. ``buf``: the read buffer (a
    bytearray of any size; 512 bytes are allocated when None).
    Memory use does not depend on the image size. ``size``: the file length
    when known; a shorter or longer image is an error. ``allow_trailing``:
    accept bytes after the TLV area that are not an MCUboot trailer (imgtool
    ``--pad`` output is always accepted).

    Checks the header and TLV magics, that every TLV fits its area, and that the
    SHA-256 TLV equals the hash of header + image + protected TLVs (skipped,
    with ``hash_verified`` False, for encrypted images): it feeds an
    :class:`ImageVerifier`. Raises :class:`~smpdfu.errors.BadImage` naming the problem.
    """
    if buf is None:
        buf = bytearray(512)
    full = len(buf)
    v = ImageVerifier(size, allow_trailing)
    mv = memoryview(buf)
    while v.error is None:
        n = stream.readinto(buf)
        if not n:
            break
        # Whole-buffer reads pass buf itself: no slice allocated per block.
        v.feed(buf if n == full else mv[:n])
    return v.finish()
