"""Small MCUboot images built in code, for portable tests (CPython and MicroPython).

``build()`` gives a valid image: a 32-byte header, a body, optional protected
TLVs and the TLV area with the SHA-256 TLV over header + body + protected TLVs,
laid out as imgtool does.
"""

import struct

from smpdfu.compat import sha256


def tlv(t, value):
    """One TLV entry: type, length, value."""
    return struct.pack("<HH", t, len(value)) + value


def build(version=(1, 2, 3, 0), body_len=100, hdr_size=32, prot=(), tlvs=(), flags=0,
          hash_tlv=True, fill=0x5A):
    """A minimal valid MCUboot image: header, body, protected TLVs, TLVs with SHA256."""
    body = bytearray(body_len)  # not a list of ints: 8 bytes each on a 64-bit MicroPython heap
    for i in range(body_len):
        body[i] = (fill + i) & 0xFF
    body = bytes(body)
    prot_area = b""
    if prot:
        entries = b"".join([tlv(t, v) for t, v in prot])
        prot_area = struct.pack("<HH", 0x6908, 4 + len(entries)) + entries
    hdr = struct.pack("<IIHHIIBBHI", 0x96F3B83D, 0, hdr_size, len(prot_area), body_len,
                      flags, version[0], version[1], version[2], version[3])
    hdr += bytes(4)  # _pad1
    hashed = hdr + bytes(hdr_size - 32) + body + prot_area
    h = sha256()
    h.update(hashed)
    entries = b""
    if hash_tlv:
        entries = tlv(0x10, h.digest())
    entries += b"".join([tlv(t, v) for t, v in tlvs])
    return hashed + struct.pack("<HH", 0x6907, 4 + len(entries)) + entries


def image_hash(image, hdr_size=32):
    """The SHA-256 TLV value of an image made by :func:`build` (what the state list shows)."""
    body_len = struct.unpack_from("<I", image, 12)[0]
    prot_len = struct.unpack_from("<H", image, 10)[0]
    h = sha256()
    h.update(image[:hdr_size + body_len + prot_len])
    return h.digest()
