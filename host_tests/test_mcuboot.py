"""smpdfu.mcuboot against real imgtool images: our parse must agree with imgtool's."""

import hashlib
import io
import os
import tracemalloc

import pytest

from imagegen import dumpinfo, imgtool_verify, make_image
from smpdfu import mcuboot, mcuboot_scan
from smpdfu.dfu_target import image_type
from smpdfu.errors import BadImage


def _verify_file(path, **kw):
    with open(path, "rb") as f:
        return mcuboot.verify(f, **kw)


def _verify_bytes(data, **kw):
    return mcuboot.verify(io.BytesIO(data), **kw)


def _zephyr_version(imgtool_version):
    """imgtool prints 1.2.3+4; Zephyr's img_mgmt_ver_str prints 1.2.3.4 (build 0 omitted)."""
    base, build = imgtool_version.split("+")
    return base if build == "0" else base + "." + build


def _check_against_imgtool(path, key=None):
    """Everything we report must match imgtool verify + dumpinfo for ``path``."""
    res = imgtool_verify(path, key)
    assert res.ok, res.output
    d = dumpinfo(path)
    info = _verify_file(path)
    data = open(path, "rb").read()

    assert info.hash_hex() == res.digest
    assert info.version_str == _zephyr_version(res.version)
    assert info.version_str == _zephyr_version(d["version"])
    assert info.load_addr == d["load_addr"]
    assert info.header_size == d["hdr_size"]
    assert info.image_size == d["img_size"]
    assert info.flags == d["flags"]
    assert info.protected_tlv_size == d["protected_tlv_size"]
    assert info.tlv_size == d["tlv_area_size"]
    assert info.tlvs == [(t, n) for t, n, _ in d["tlvs"]]
    assert info.protected_tlvs == [(t, n) for t, n, _ in d["prot_tlvs"]]
    sha_tlv = [v for t, n, v in d["tlvs"] if t == 0x10]
    assert sha_tlv == [info.hash]
    assert mcuboot_scan.signed(info) == (key is not None)
    assert info.hash_verified
    assert info.file_size == len(data)
    assert info.file_sha == hashlib.sha256(data).digest()
    assert mcuboot.hexstr(info.file_sha) == hashlib.sha256(data).hexdigest()
    if not info.padded:
        assert info.total_size == len(data)
    sec = [v for t, n, v in d["prot_tlvs"] if t == 0x50]
    if sec:
        assert info.security_counter == int.from_bytes(sec[0], "little")
    else:
        assert info.security_counter is None
    return info


# -- agreement with imgtool --------------------------------------------------

@pytest.mark.parametrize("key", [None, "ecdsa-p256", "rsa-2048", "rsa-3072", "ed25519"])
@pytest.mark.parametrize("version", ["0.0.0", "1.2.3", "1.2.3+4", "255.255.65535+4294967295"])
def test_signed_and_unsigned_match_imgtool(tmp_path, key, version):
    p = make_image(tmp_path / "a.img", version=version, size=3001, key=key, seed=7)
    info = _check_against_imgtool(p, key)
    assert not info.protected_tlvs
    assert mcuboot_scan.bootable(info)


@pytest.mark.parametrize("header_size,pad_header", [(0x20, True), (0x200, True),
                                                     (0x400, False), (0x1000, True)])
@pytest.mark.parametrize("size", [1, 511, 512, 4096, 20000])
def test_header_sizes_and_body_sizes(tmp_path, header_size, pad_header, size):
    p = make_image(tmp_path / "a.img", size=size, header_size=header_size,
                   pad_header=pad_header, seed=size)
    info = _check_against_imgtool(p)
    assert info.header_size == header_size
    assert info.image_size == size  # imgtool writes the header over the zeros


@pytest.mark.parametrize("key", [None, "ecdsa-p256"])
@pytest.mark.parametrize("prot", [
    {"security_counter": "auto"},
    {"security_counter": "0x1234"},
    {"boot_record": "CoFM"},
    {"security_counter": 7, "boot_record": "SPE", "dependencies": "(1, 1.0.0+0)"},
    {"custom_tlvs": [("0xa0", "0x01020304"), ("0xa1", "hello")]},
])
def test_protected_tlvs_match_imgtool(tmp_path, key, prot):
    p = make_image(tmp_path / "a.img", version="2.0.1+9", size=2000, key=key, **prot)
    info = _check_against_imgtool(p, key)
    assert info.protected_tlv_size > 0
    assert info.protected_tlvs
    if prot.get("security_counter") == "0x1234":
        assert info.security_counter == 0x1234


def test_non_bootable_flag(tmp_path):
    p = make_image(tmp_path / "a.img", non_bootable=True)
    info = _check_against_imgtool(p)
    assert info.flags & mcuboot_scan.IMAGE_F_NON_BOOTABLE
    assert not mcuboot_scan.bootable(info)


@pytest.mark.parametrize("kw", [{"pad": True}, {"confirm": True}, {"test": True},
                                {"confirm": True, "max_align": 16, "align": 16}])
def test_padded_to_slot_is_accepted(tmp_path, kw):
    slot = 0x8000
    p = make_image(tmp_path / "a.img", size=5000, slot_size=slot, **kw)
    info = _check_against_imgtool(p)
    assert info.padded
    assert info.file_size == slot == os.path.getsize(p)
    assert info.total_size < slot
    # the same image unpadded has the same image hash, a different file sha
    q = make_image(tmp_path / "b.img", size=5000, slot_size=slot)
    plain = _verify_file(q)
    assert plain.hash == info.hash and plain.file_sha != info.file_sha
    assert not plain.padded


def test_encrypted_image_hash_not_checked(tmp_path):
    # imgtool hashes the plaintext, then encrypts the body: the hash cannot be
    # checked without the key (imgtool verify rejects it too: invalid hash).
    p = make_image(tmp_path / "a.img", key="ed25519", encrypt="x25519")
    assert not imgtool_verify(p).ok
    info = _verify_file(p)
    assert mcuboot_scan.encrypted(info) and not info.hash_verified
    assert info.hash == [v for t, n, v in dumpinfo(p)["tlvs"] if t == 0x10][0]


def test_sha384_image_named_as_unsupported(tmp_path):
    p = make_image(tmp_path / "a.img", key="ecdsa-p384")
    assert imgtool_verify(p).ok  # a valid image, with a SHA384 TLV (0x11)
    with pytest.raises(BadImage, match="SHA-384"):
        _verify_file(p)


def test_big_endian_image_named(tmp_path):
    p = make_image(tmp_path / "a.img", extra_args=["-e", "big"])
    with pytest.raises(BadImage, match="big-endian"):
        _verify_file(p)


def test_version_str_matches_zephyr_img_mgmt_ver_str():
    # Zephyr img_mgmt_ver_str: "%hu.%hu.%hu", then ".%u" only if build_num != 0
    assert mcuboot.version_str((1, 2, 3, 0)) == "1.2.3"
    assert mcuboot.version_str((1, 2, 3, 4)) == "1.2.3.4"
    assert mcuboot.version_str((255, 255, 65535, 4294967295)) == "255.255.65535.4294967295"


# -- corruption: we and imgtool both reject -----------------------------------

def _img(tmp_path, **kw):
    kw.setdefault("size", 3000)
    p = make_image(tmp_path / "good.img", **kw)
    return p, bytearray(open(p, "rb").read()), _verify_file(p)


def _hashed(info):
    """Bytes the image hash covers: header + image + protected TLVs."""
    return info.header_size + info.image_size + info.protected_tlv_size


def _write(tmp_path, data, name="bad.img"):
    p = str(tmp_path / name)
    with open(p, "wb") as f:
        f.write(data)
    return p


@pytest.mark.parametrize("key", [None, "ecdsa-p256"])
@pytest.mark.parametrize("where", ["body_first", "body_middle", "body_last", "header_version",
                                   "header_pad", "hash_tlv_value"])
def test_flipped_byte_is_hash_mismatch(tmp_path, key, where):
    p, data, info = _img(tmp_path, key=key)
    h = info.header_size
    off = {"body_first": h, "body_middle": h + 1500, "body_last": h + info.image_size - 1,
           "header_version": 20, "header_pad": 100,
           "hash_tlv_value": _hashed(info) + 4 + 4 + 5}[where]
    data[off] ^= 0x40
    bad = _write(tmp_path, data)
    with pytest.raises(BadImage, match="hash mismatch") as e:
        _verify_file(bad)
    msg = str(e.value)
    if where == "hash_tlv_value":
        assert info.hash_hex() in msg  # the computed one is the good one
    else:
        assert info.hash_hex() in msg  # the TLV still holds the good one
        assert hashlib.sha256(bytes(data[:_hashed(info)])).hexdigest() in msg
    res = imgtool_verify(bad)
    assert not res.ok and "invalid hash" in res.output


def test_flipped_protected_tlv_byte_is_hash_mismatch(tmp_path):
    p, data, info = _img(tmp_path, security_counter=5)
    data[info.header_size + info.image_size + 4 + 4] ^= 1  # SEC_CNT value
    bad = _write(tmp_path, data)
    with pytest.raises(BadImage, match="hash mismatch"):
        _verify_file(bad)
    assert not imgtool_verify(bad).ok


def test_bad_header_magic(tmp_path):
    p, data, info = _img(tmp_path)
    data[0] ^= 0xFF
    bad = _write(tmp_path, data)
    with pytest.raises(BadImage, match=r"bad image magic 0x96f3b8c2 \(expected 0x96f3b83d\)"):
        _verify_file(bad)
    res = imgtool_verify(bad)
    assert not res.ok and "Invalid image magic" in res.output


def test_bad_tlv_info_magic(tmp_path):
    p, data, info = _img(tmp_path)
    data[_hashed(info)] ^= 0x01
    bad = _write(tmp_path, data)
    with pytest.raises(BadImage, match="bad TLV info magic 0x6906 at offset %d" % _hashed(info)):
        _verify_file(bad)
    res = imgtool_verify(bad)
    assert not res.ok and "Invalid TLV info magic" in res.output


def test_bad_protected_tlv_magic(tmp_path):
    p, data, info = _img(tmp_path, boot_record="CoFM")
    off = info.header_size + info.image_size
    data[off + 1] = 0x00
    bad = _write(tmp_path, data)
    with pytest.raises(BadImage, match="bad protected TLV magic 0x0008"):
        _verify_file(bad)
    assert not imgtool_verify(bad).ok


def test_protected_size_mismatch(tmp_path):
    p, data, info = _img(tmp_path, security_counter=1)
    data[info.header_size + info.image_size + 2] += 4  # area size != header's
    with pytest.raises(BadImage, match="protected TLV area size"):
        _verify_bytes(bytes(data))


def test_missing_sha256_tlv(tmp_path):
    # Retype the SHA256 TLV as a vendor TLV (0xa0): structure intact, hash gone.
    p, data, info = _img(tmp_path)
    off = _hashed(info) + 4
    assert data[off] == 0x10
    data[off] = 0xA0
    bad = _write(tmp_path, data)
    with pytest.raises(BadImage, match="missing SHA256 TLV"):
        _verify_file(bad)
    assert not imgtool_verify(bad).ok  # imgtool: no signature/hash found


def test_tlv_overrunning_area(tmp_path):
    p, data, info = _img(tmp_path)
    off = _hashed(info) + 4 + 2  # SHA256 TLV length
    data[off] = 0x40
    with pytest.raises(BadImage, match="overruns the area"):
        _verify_bytes(bytes(data))


@pytest.mark.parametrize("key", [None, "rsa-2048"])
def test_truncation_anywhere_is_named(tmp_path, key):
    p, data, info = _img(tmp_path, key=key, security_counter=3)
    n = len(data)
    h = info.header_size
    cuts = [0, 1, 31, 32, h - 1, h, h + 1000, _hashed(info) - 1,
            _hashed(info) + 2, _hashed(info) + 6, _hashed(info) + 20, n - 1]
    for cut in cuts:
        with pytest.raises(BadImage, match="truncated") as e:
            _verify_bytes(bytes(data[:cut]))
        assert "offset" in str(e.value) or "need" in str(e.value)
    # imgtool too rejects images cut inside the body (TLV magic not found)
    assert not imgtool_verify(_write(tmp_path, data[:h + 1000])).ok


def test_trailing_garbage(tmp_path):
    p, data, info = _img(tmp_path)
    bad = bytes(data) + b"\x00garbage"
    with pytest.raises(BadImage, match="8 bytes of trailing data after the TLV area"):
        _verify_bytes(bad)
    ok = _verify_bytes(bad, allow_trailing=True)
    assert ok.hash == info.hash and ok.file_size == len(bad)
    assert ok.file_sha == hashlib.sha256(bad).digest()


def test_size_argument(tmp_path):
    p, data, info = _img(tmp_path)
    n = len(data)
    assert _verify_bytes(bytes(data), size=n).file_size == n
    with pytest.raises(BadImage, match="longer than the given size %d" % (n - 1)):
        _verify_bytes(bytes(data), size=n - 1)
    with pytest.raises(BadImage, match="truncated image: file ends at offset %d, expected %d bytes" % (n, n + 1)):
        _verify_bytes(bytes(data), size=n + 1)
    with pytest.raises(BadImage, match="longer than the given size"):
        _verify_bytes(bytes(data) + b"xx", size=n, allow_trailing=True)


# -- streaming properties -----------------------------------------------------

class _Trickle:
    """A non-seekable stream that hands out at most ``step`` bytes per readinto."""

    def __init__(self, data, step):
        self.data = data
        self.pos = 0
        self.step = step

    def readinto(self, b):
        n = min(len(b), self.step, len(self.data) - self.pos)
        b[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


@pytest.mark.parametrize("bufsize", [32, 33, 100, 512, 4096])
@pytest.mark.parametrize("step", [1, 7, 10 ** 9])
def test_any_buffer_and_short_reads_give_same_result(tmp_path, bufsize, step):
    p, data, info = _img(tmp_path, key="ecdsa-p256", security_counter="auto", size=2345)
    got = mcuboot.verify(_Trickle(bytes(data), step), bytearray(bufsize))
    assert (got.hash, got.file_sha, got.version, got.tlvs, got.protected_tlvs,
            got.total_size) == (info.hash, info.file_sha, info.version, info.tlvs,
                                info.protected_tlvs, info.total_size)


def test_any_buffer_size_reads_the_header_whole(tmp_path):
    # The verifier collects a field across reads: a buffer smaller than the header works.
    data = open(make_image(tmp_path / "a.img", size=700), "rb").read()
    for n in (1, 16):
        assert mcuboot.verify(io.BytesIO(data), bytearray(n)).file_sha == hashlib.sha256(data).digest()


def test_peak_memory_independent_of_image_size(tmp_path):
    small = make_image(tmp_path / "s.img", size=2000)
    big = make_image(tmp_path / "b.img", size=2 * 1024 * 1024, slot_size=0x400000)
    peaks = []
    for p in (small, big):
        with open(p, "rb", buffering=0) as f:
            buf = bytearray(512)
            tracemalloc.start()
            mcuboot.verify(f, buf)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    assert peaks[1] < peaks[0] + 2048, peaks
    assert peaks[1] < 16384, peaks


def test_file_sha256_and_image_type(tmp_path):
    p, data, info = _img(tmp_path)
    assert mcuboot_scan.file_sha256(io.BytesIO(bytes(data))) == hashlib.sha256(data).digest()
    assert mcuboot_scan.file_sha256(io.BytesIO(bytes(data)), bytearray(7)) == info.file_sha
    assert image_type(bytes(data[:4])) == "mcuboot"
    assert image_type(bytes(data[:32])) == "mcuboot"
    assert image_type(b"\x3d\xb8\xf3") is None
    assert image_type(b"\x00" * 32) is None
    assert mcuboot_scan.read_info(io.BytesIO(bytes(data))).hash == info.hash


def test_parse_header(tmp_path):
    p, data, info = _img(tmp_path, version="3.4.5+6")
    h = mcuboot_scan.parse_header(bytes(data[:32]))
    assert (h.header_size, h.image_size, h.version) == (0x200, 3000, (3, 4, 5, 6))
    assert h.hash is None and h.file_sha is None
    with pytest.raises(BadImage, match="truncated image header: 31 bytes"):
        mcuboot_scan.parse_header(bytes(data[:31]))
    bad = bytearray(data[:32])
    bad[8] = 16
    bad[9] = 0
    with pytest.raises(BadImage, match="bad header size 16"):
        mcuboot_scan.parse_header(bad)


def test_fault_numbers_match_the_public_names(tmp_path):
    # mcuboot's private _E_* numbers carry the fault; mcuboot_scan names them for servers.
    good = bytearray(open(make_image(tmp_path / "a.bin", version="1.0.0", size=2000), "rb").read())

    def fault(data):
        v = mcuboot.ImageVerifier(allow_trailing=True)
        v.feed(bytes(data))
        with pytest.raises(BadImage):
            v.finish()
        return v.error.fault

    bad_magic = bytearray(good)
    bad_magic[0] ^= 0xFF
    assert fault(bad_magic) == mcuboot_scan.FAULT_HEADER
    bad_body = bytearray(good)
    bad_body[100] ^= 0xFF
    assert fault(bad_body) == mcuboot_scan.FAULT_HASH
    assert fault(good[:1000]) == mcuboot_scan.FAULT_TRUNCATED
    hdr_size = good[8] | good[9] << 8
    img_size = int.from_bytes(good[12:16], "little")
    bad_tlv = bytearray(good)
    bad_tlv[hdr_size + img_size] ^= 0xFF  # the TLV info magic
    assert fault(bad_tlv) == mcuboot_scan.FAULT_TLV_AREA


def test_error_numbers_are_the_same_in_mcuboot_and_its_texts():
    # mcuboot_errors builds the texts for mcuboot's private _E_* numbers: the two lists must agree.
    import re

    def numbers(mod):
        with open(mod.__file__) as f:
            return re.findall(r"^(_E_\w+) = const\((0x[0-9a-fA-F]+)\)", f.read(), re.M)

    from smpdfu import mcuboot_errors
    assert numbers(mcuboot) == numbers(mcuboot_errors) and len(numbers(mcuboot)) == 12
