"""The texts of the :class:`~smpdfu.errors.BadImage` errors :class:`smpdfu.mcuboot.ImageVerifier` finds.

Imported by the verifier only when a check fails: a board checking a good
image holds none of these strings. It reads where the walk stopped from the
verifier (its private ``_S_*`` state), so it goes with :mod:`smpdfu.mcuboot`.
"""

from .compat import const
from .errors import BadImage
from .mcuboot import hexstr

# mcuboot's _E_* numbers (the same names there: test_mcuboot checks).
_E_LONGER = const(0x01)
_E_TRAILING = const(0x02)
_E_MAGIC = const(0x10)
_E_HEADER = const(0x11)
_E_INFO = const(0x20)
_E_ENTRY = const(0x30)
_E_VALUE = const(0x31)
_E_HASHES = const(0x40)
_E_HASH_SIZE = const(0x50)
_E_NO_HASH = const(0x60)
_E_HASH = const(0x70)
_E_TRUNCATED = const(0x80)


def bad(v, code, args):
    """The :class:`BadImage` naming what is wrong: ``code`` (an ``_E_*``) found by the verifier ``v``.

    Its ``fault`` is the number ``mcuboot_scan`` names ``FAULT_*`` (None for a trailing-bytes problem).
    """
    prot = "protected " if v._img_hash is not None else ""  # the walk was in the hashed part
    info = v.info
    if code == _E_LONGER:
        text = "file is longer than the given size %d" % args
    elif code == _E_TRAILING:
        text = "%d bytes of trailing data after the TLV area (image ends at offset %d)" % args
    elif code == _E_MAGIC:
        b = args[0]
        found = "0x%02x%02x%02x%02x" % (b[3], b[2], b[1], b[0])
        if b == b"\x96\xf3\xb8\x3d":
            text = "bad image magic %s: a big-endian image (expected little-endian 0x96f3b83d)" % found
        else:
            text = "bad image magic %s (expected 0x96f3b83d)" % found
    elif code == _E_HEADER:
        hdr, psize = args
        if hdr < 32:
            text = "bad header size %d (less than 32)" % hdr
        else:
            text = "bad protected TLV size %d in the header" % psize
    elif code == _E_INFO:
        magic, tot, at = args
        if prot:
            if magic != 0x6908:
                text = "bad protected TLV magic 0x%04x at offset %d (expected 0x6908)" % (magic, at)
            elif tot < 4:
                text = "bad protected TLV size %d at offset %d" % (tot, at)
            else:
                text = "protected TLV area size %d does not match header's %d" % (tot, info.protected_tlv_size)
        elif magic == 0x6908 and not info.protected_tlv_size:
            text = "protected TLV area at offset %d but the header says protected_tlv_size 0" % at
        elif magic != 0x6907:
            text = "bad TLV info magic 0x%04x at offset %d (expected 0x6907)" % (magic, at)
        else:
            text = "bad TLV area size %d at offset %d" % (tot, at)
    elif code == _E_ENTRY:
        text = "%sTLV entry header at offset %d overruns the area (ends at %d)" % ((prot,) + args)
    elif code == _E_VALUE:
        text = "%sTLV 0x%02x of length %d at offset %d overruns the area (ends at %d)" % ((prot,) + args)
    elif code == _E_HASHES:
        text = "more than one SHA256 TLV"
    elif code == _E_HASH_SIZE:
        text = "SHA256 TLV has length %d (expected 32)" % args
    elif code == _E_NO_HASH:
        text = "missing SHA256 TLV"
        for t, _ in info.tlvs:
            if t == 0x11 or t == 0x12:
                text = "image hash TLV is SHA-%d (0x%02x); only SHA-256 images are supported" % (
                    384 if t == 0x11 else 512, t)
    elif code == _E_HASH:
        text = "image hash mismatch: SHA256 TLV %s, computed %s" % (hexstr(info.hash), hexstr(v._buf[32:64]))
    else:  # _E_TRUNCATED: named by what the image needs (where the cut item ends), not by a read
        st = v._state
        if st == 0:  # _S_HEADER
            text = "truncated image header: %d bytes (need 32)" % v.pos
        elif st == 6:  # _S_TRAIL: the image is whole, the file is not
            text = "truncated image: file ends at offset %d, expected %d bytes" % (v.pos, v.size)
        else:
            what = (None, prot + "TLV info", prot + "TLV entry", "SEC_CNT" if prot else "SHA256 TLV", "image body",
                    prot + "TLV")[st]  # by _S_* state
            end = v.pos + v.collect_left + v.pass_left  # (one of them is 0)
            text = "truncated image: the %s runs to offset %d; the file ends after %d bytes" % (what, end, v.pos)
    e = BadImage(text)
    e.fault = code >> 4 or None  # the high nibble: mcuboot_scan's FAULT_* number
    return e
