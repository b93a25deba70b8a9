"""smpdfu.mcuboot, portable: runs under pytest on CPython and on MicroPython.

No pytest, no fixtures: plain ``test_*`` functions. Images are an embedded
imgtool-made one and small ones built here in code.
"""

import io
import struct
from binascii import unhexlify

from smpdfu import mcuboot, mcuboot_scan
from smpdfu.compat import sha256
from smpdfu.dfu_target import image_type
from smpdfu.errors import BadImage

from mcuimg import build

# Made once with PyPI imgtool 2.5.0 (host_tests/imagegen.py):
#   make_image(p, version="1.2.3+4", size=256, header_size=0x20, key="ecdsa-p256",
#              security_counter="auto", seed=1, slot_size=0x10000)
# = imgtool sign -v 1.2.3+4 -H 0x20 --pad-header -S 0x10000 -k <ecdsa-p256 key> -s auto
# imgtool verify: "Image version: 1.2.3+4", "Image digest: a24851fa...dd70".
IMGTOOL_IMAGE = unhexlify(
    "3db8f3960000000020000c000001000000000000010203000400000000000000f5b165224a58"
    "b791df6af1d8303e61cdc4bb86c3d1c427103c344c4189eb2f1e7bd5d47e446fcec2a3d81173"
    "6110e5781bcccea696762e6116c6e9c92d99bf358c2e0718822ce47ca8c74107e66cb0e4b2b3"
    "f4d58d82ca6386d2c96e760e819b85c924c3597164c4a6058a00581a22b22de50472433d2e44"
    "fed8b6b8357e44cd3129903ac1d45597a242fdf11f8f2b1a39f3c3e693114351dcbed407e3e6"
    "b605b99e8306dda748a61e029a8a3f415b024a146cf0d98a98e1cf999661f967bdafdf0e7337"
    "420c13f8f5d40f6ce079d1b987376f07bcb81287fdc8c0388fe881c3a0661970ef3f6df0148d"
    "ed7e8a34888d396cab3b80d27f58df111a3b3df245ad08690c00500004000300020107699700"
    "10002000a24851fa18d2366c9bfd5b49e2dce2bc35e7d4a1eea5f9b676b0834f5623dd700100"
    "20009fab1dd09841288b38c69ea30797dc61b72b39ec2155367ef3d88dcb10068ffe22004700"
    "3045022029475ecd297b7d7577dcaebfdb8e5656c73e41da35b11c8e474296db26e79cd00221"
    "009fe9409510b04fa041ac39d0932cb5763bcfae505c51869f3cdfc8ac8c083c70"
)
IMGTOOL_DIGEST = "a24851fa18d2366c9bfd5b49e2dce2bc35e7d4a1eea5f9b676b0834f5623dd70"
IMGTOOL_FILE_SHA = "c93d3127b41b6b420d96d3aabc1a3e5038502458763aa63a5332fae584656571"


def _raises(fn, *words):
    """Call fn; it must raise BadImage whose message contains every word."""
    try:
        fn()
    except BadImage as e:
        msg = str(e)
        for w in words:
            assert w in msg, "%r not in %r" % (w, msg)
        return msg
    raise AssertionError("no BadImage raised (wanted %r)" % (words,))


def _v(data, **kw):
    return mcuboot.verify(io.BytesIO(data), **kw)


def _sha_hex(data):
    h = sha256()
    h.update(data)
    return mcuboot.hexstr(h.digest())


def test_imgtool_image_matches_imgtool():
    info = _v(IMGTOOL_IMAGE)
    assert info.hash_hex() == IMGTOOL_DIGEST
    assert mcuboot.hexstr(info.file_sha) == IMGTOOL_FILE_SHA
    assert info.version == (1, 2, 3, 4)
    assert info.version_str == "1.2.3.4"
    assert info.header_size == 0x20 and info.image_size == 256
    assert info.protected_tlv_size == 12
    assert info.protected_tlvs == [(0x50, 4)]
    assert info.security_counter == 0x01020003  # "auto": major<<24 | minor<<16 | revision
    assert info.tlvs == [(0x10, 32), (0x01, 32), (0x22, 71)]
    assert mcuboot_scan.signed(info) and mcuboot_scan.bootable(info) and info.hash_verified and not info.padded
    assert info.total_size == len(IMGTOOL_IMAGE) == info.file_size


def test_imgtool_image_with_small_buffer_and_size():
    info = _v(IMGTOOL_IMAGE, buf=bytearray(32), size=len(IMGTOOL_IMAGE))
    assert info.hash_hex() == IMGTOOL_DIGEST
    assert mcuboot.hexstr(info.file_sha) == IMGTOOL_FILE_SHA


def test_imgtool_image_every_body_byte_is_checked():
    data = bytearray(IMGTOOL_IMAGE)
    for off in (0x20, 0x20 + 128, 0x20 + 255, 4 + 4 + 0x20 + 256):  # body, SEC_CNT value
        data[off] ^= 1
        _raises(lambda: _v(bytes(data)), "hash mismatch", IMGTOOL_DIGEST)
        data[off] ^= 1
    assert _v(bytes(data)).hash_hex() == IMGTOOL_DIGEST


def test_built_image_roundtrip():
    img = build(version=(3, 0, 7, 0), body_len=1000, hdr_size=0x200)
    info = _v(img)
    assert info.version_str == "3.0.7"
    assert info.header_size == 0x200 and info.image_size == 1000
    assert info.total_size == len(img) == info.file_size
    assert info.tlvs == [(0x10, 32)] and info.protected_tlvs == []
    assert not mcuboot_scan.signed(info)
    assert info.hash == img[-32:]
    assert mcuboot.hexstr(info.file_sha) == _sha_hex(img)
    assert mcuboot.hexstr(mcuboot_scan.file_sha256(io.BytesIO(img), bytearray(33))) == _sha_hex(img)


def test_built_image_with_protected_tlvs_and_flags():
    img = build(prot=[(0x50, b"\x05\x00\x00\x00"), (0xA0, b"xyz")],
                tlvs=[(0x22, bytes(70))], flags=0x10)
    info = _v(img, buf=bytearray(40))
    assert info.protected_tlvs == [(0x50, 4), (0xA0, 3)]
    assert info.security_counter == 5
    assert info.protected_tlv_size == 4 + 8 + 7
    assert mcuboot_scan.signed(info)
    assert not mcuboot_scan.bootable(info)


def test_bad_magics():
    img = bytearray(build())
    img[3] = 0x00
    _raises(lambda: _v(bytes(img)), "bad image magic 0x00f3b83d", "expected 0x96f3b83d")
    img = bytearray(build(body_len=50))
    img[32 + 50] = 0x08  # TLV info magic 0x6907 -> 0x6908 with header prot size 0
    _raises(lambda: _v(bytes(img)), "protected TLV area", "protected_tlv_size 0")
    img[32 + 50] = 0x00
    _raises(lambda: _v(bytes(img)), "bad TLV info magic 0x6900", "offset 82")
    img = bytearray(build(body_len=50, prot=[(0x50, bytes(4))]))
    img[32 + 50] = 0x07
    _raises(lambda: _v(bytes(img)), "bad protected TLV magic 0x6907")


def test_missing_and_duplicate_hash():
    _raises(lambda: _v(build(hash_tlv=False, tlvs=[(0x01, bytes(32))])), "missing SHA256 TLV")
    _raises(lambda: _v(build(hash_tlv=False, tlvs=[(0x12, bytes(64))])), "SHA-512")
    img = build(body_len=10)
    dup = img[:-40] + struct.pack("<HH", 0x6907, 4 + 72) + img[-36:] + img[-36:]
    _raises(lambda: _v(dup), "more than one SHA256 TLV")
    short = build(hash_tlv=False, tlvs=[(0x10, bytes(20))])
    _raises(lambda: _v(short), "SHA256 TLV has length 20")


def test_truncated_body_names_what_the_image_needs():
    # not the 4 KB read that failed: the body's whole size and where it ends
    img = build(body_len=10000)
    for size in (5000, None):
        msg = _raises(lambda: _v(img[:5000], buf=bytearray(4096), size=size),
                      "the image body runs to offset 10032; the file ends after 5000 bytes")
        assert "4096" not in msg


def test_truncated_everywhere():
    img = build(body_len=300, prot=[(0x50, bytes(4))], tlvs=[(0x24, bytes(64))])
    for cut in (0, 10, 31, 32, 200, 332, 340, len(img) - 70, len(img) - 1):
        _raises(lambda: _v(img[:cut]), "truncated")
    _raises(lambda: _v(img, size=len(img) + 5), "truncated")
    _raises(lambda: _v(img, size=len(img) - 1), "longer than the given size %d" % (len(img) - 1))


def test_trailing_data_and_slot_padding():
    img = build()
    _raises(lambda: _v(img + b"\xff" * 100), "100 bytes of trailing data")
    assert _v(img + b"junk", allow_trailing=True).file_size == len(img) + 4
    _raises(lambda: _v(img + b"junk", size=len(img), allow_trailing=True), "longer than")
    magic = unhexlify("77c295f360d2ef7f3552500f2cb67980")
    for pad in (0, 5, 600):
        padded = img + b"\xff" * pad + magic
        info = _v(padded, buf=bytearray(64))
        assert info.padded and info.file_size == len(padded)
        assert mcuboot.hexstr(info.file_sha) == _sha_hex(padded)


def test_tlv_entry_overrun():
    img = bytearray(build())
    img[-32 - 2] = 33  # SHA256 TLV claims 33 bytes, area holds 32
    _raises(lambda: _v(bytes(img)), "overruns the area")


def test_short_reads_stream():
    class Trickle:
        def __init__(self, data):
            self.data = data
            self.pos = 0

        def readinto(self, b):
            n = min(len(b), 3, len(self.data) - self.pos)
            b[0:n] = self.data[self.pos:self.pos + n]
            self.pos += n
            return n

    info = mcuboot.verify(Trickle(IMGTOOL_IMAGE))
    assert info.hash_hex() == IMGTOOL_DIGEST and mcuboot.hexstr(info.file_sha) == IMGTOOL_FILE_SHA


def test_helpers():
    assert mcuboot.version_str((0, 0, 0, 0)) == "0.0.0"
    assert mcuboot.version_str((1, 2, 65535, 4294967295)) == "1.2.65535.4294967295"
    assert image_type(IMGTOOL_IMAGE[:4]) == "mcuboot"
    assert image_type(b"\x00\x01") is None
    assert image_type(b"\x3d\xb8\xf3\x97") is None
    assert mcuboot.hexstr(b"\x00\xab") == "00ab"
    h = mcuboot_scan.parse_header(IMGTOOL_IMAGE[:32])
    assert h.version == (1, 2, 3, 4) and h.hash is None
    _raises(lambda: mcuboot_scan.parse_header(IMGTOOL_IMAGE[:20]), "truncated image header")


def test_allocation_does_not_grow_with_image_size():
    # On MicroPython, gc.mem_alloc() deltas count every byte allocated during
    # verify(): the body is streamed through the caller's buffer, so a 64 KiB
    # body must allocate no more than a 1 KiB one. (CPython: see tracemalloc test.)
    import gc

    mem_alloc = getattr(gc, "mem_alloc", lambda: None)  # MicroPython only
    used = []
    for body_len in (1024, 65536):
        stream = io.BytesIO(build(body_len=body_len, prot=[(0x50, bytes(4))]))
        buf = bytearray(512)
        gc.collect()
        a0 = mem_alloc()
        info = mcuboot.verify(stream, buf)
        a1 = mem_alloc()
        assert info.image_size == body_len and info.hash_verified
        if a0 is not None:
            used.append(a1 - a0)
    if used:
        assert used[1] <= used[0] + 64, used


def test_skip_only_passes_what_is_passed_over():
    img = build(body_len=100)
    v = mcuboot.ImageVerifier()
    v.feed(img[:10])
    assert v.pass_left == 0 and v.collect_left == 22
    v.skip(0)  # nothing to skip while the header is read: no-op
    assert v.collect_left == 22 and not v.skipped
    try:
        v.skip(1)
        raise AssertionError("skipped a header byte")
    except ValueError:
        pass
    v.feed(img[10:32])
    assert v.pass_left == 100 and v.collect_left == 0
    v.skip(100)
    v.feed(img[132:])
    info = v.finish()
    assert info.hash == img[-32:] and not info.hash_verified and info.file_sha is None
