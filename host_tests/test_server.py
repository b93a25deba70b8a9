"""SMP server (lib/smpdfu/server*.py) fed packets directly: Zephyr's rules, exact rc values."""

import hashlib

import pytest

from imagegen import make_image
from smpdfu import cbor
from smpdfu.server import unpack_header
from smpdfu.server import SMPServer
from smpdfu.server_image import ImageGroup
from smpdfu.server_os import OSGroup
from smpdfu_host.emulator import bootloader
from smpdfu_host.emulator.flash import FlashFile

from emulator.smpwire import READ, WRITE, packet

SLOT = 0x20000


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    out = {}
    for name, ver, size in (("v1", "1.0.0", 6000), ("v2", "2.0.0", 9000), ("v3", "3.1.2+7", 5000)):
        with open(make_image(d / (name + ".bin"), version=ver, size=size, seed=size), "rb") as f:
            out[name] = f.read()
    return out


def image_hash(img):
    import io
    from smpdfu.mcuboot import verify
    return verify(io.BytesIO(img)).hash


class Dev:
    """Server + flash, with a ``call`` helper and ``boot`` (MCUboot at reset)."""

    def __init__(self, path, v1_image, **kw):
        self.flash = FlashFile(str(path), SLOT, 4096, speed=0)
        bootloader.install_factory(self.flash, v1_image)
        self.resets = 0
        self.kw = kw
        self.new_server()

    def new_server(self):
        kw = dict(self.kw)
        img_kw = {k: kw.pop(k) for k in ("progressive_erase", "image_check") if k in kw}
        self.server = SMPServer(**kw)
        self.img = ImageGroup(self.flash, **img_kw)
        self.os = OSGroup(self.img.running_version, self._reset)
        self.server.register(self.os)
        self.server.register(self.img)

    def _reset(self):
        self.resets += 1

    def boot(self):
        res = bootloader.boot(self.flash)
        self.new_server()
        return res

    def call(self, op, group, cmd, body=None, version=1, seq=7):
        rsps = self.server.process(packet(op, group, cmd, body or {}, seq, version))
        assert len(rsps) == 1
        h = unpack_header(rsps[0])
        assert h[5] == seq and h[4] == group and h[6] == cmd and h[0] == op | 1
        return h, cbor.loads(rsps[0][8:])

    def body(self, *a, **kw):
        return self.call(*a, **kw)[1]

    def upload(self, img, chunk=200, sha=True):
        off = 0
        while True:
            b = {"off": off, "data": img[off:off + chunk]}
            if off == 0:
                b["len"] = len(img)
                if sha:
                    b["sha"] = hashlib.sha256(img).digest()
            r = self.body(WRITE, 1, 1, b)
            assert "err" not in r, r
            off = r["off"]
            if off >= len(img):
                return r


@pytest.fixture
def dev(tmp_path, images):
    d = Dev(tmp_path / "flash.bin", images["v1"])
    yield d
    d.flash.close()


def flags(entry):
    return "".join(c for c, k in (("B", "bootable"), ("P", "pending"), ("C", "confirmed"),
                                  ("A", "active"), ("X", "permanent")) if entry.get(k))


def table(d):
    return [(e["slot"], e["version"], flags(e)) for e in d.body(READ, 1, 0)["images"]]


# --- OS group ----------------------------------------------------------------------

def test_echo_params_and_versions(dev):
    h, b = dev.call(READ, 0, 0, {"d": "hello"}, version=1)
    assert b == {"r": "hello"} and h[1] == 1
    h, b = dev.call(WRITE, 0, 0, {"d": "v1"}, version=0)
    assert b == {"r": "v1"} and h[1] == 0 and h[0] == 3
    assert dev.body(READ, 0, 6) == {"buf_size": 384, "buf_count": 4}
    assert dev.body(READ, 0, 0, {"d": 5}) == {"rc": 3}  # wrong type: EINVAL


def test_os_info_formats(dev):
    assert dev.body(READ, 0, 7, {}) == {"output": "Zephyr"}
    assert dev.body(READ, 0, 7, {"format": "vs"}) == {"output": "Zephyr 1.0.0"}
    out = dev.body(READ, 0, 7, {"format": "a"})["output"]
    assert out.startswith("Zephyr unknown v3.7.0 1.0.0 ") and out.endswith("arm cortex-m4 nrf52840dk Zephyr")
    assert dev.body(READ, 0, 7, {"format": "sq"}) == {"err": {"group": 0, "rc": 2}}
    assert dev.body(READ, 0, 7, {"format": "sq"}, version=0) == {"rc": 3}


def test_bootloader_info(dev):
    assert dev.body(READ, 0, 8) == {"bootloader": "MCUboot"}
    assert dev.body(READ, 0, 8, {"query": "mode"}) == {"mode": 3}
    assert dev.body(READ, 0, 8, {"query": "nope"}) == {"rc": 3}


def test_reset_and_force(tmp_path, images):
    d = Dev(tmp_path / "f.bin", images["v1"])
    assert d.body(WRITE, 0, 5) == {} and d.resets == 1
    d.os.reset_busy = True
    assert d.body(WRITE, 0, 5) == {"rc": 10} and d.resets == 1
    assert d.body(WRITE, 0, 5, {"force": True}) == {} and d.resets == 2
    d.flash.close()


def test_protocol_errors(dev):
    assert dev.body(READ, 0, 42) == {"rc": 8}  # no such command
    assert dev.body(READ, 0, 5) == {"rc": 8}  # reset has no read handler
    assert dev.body(READ, 77, 0) == {"rc": 8}  # no such group
    h, b = dev.call(READ, 0, 0, {"d": "x"}, version=2)
    assert b == {"rc": 13} and h[1] == 1  # UNSUPPORTED_TOO_NEW, answered as v2
    pkt = bytearray(packet(READ, 0, 0, {"d": "x"}, 1))
    pkt[8] = 0xFF  # not CBOR
    r = dev.server.process(bytes(pkt))
    assert cbor.loads(r[0][8:]) == {"rc": 3}
    short = packet(READ, 0, 0, {"d": "xyz"}, 1)[:-2]  # header says more than there is
    assert cbor.loads(dev.server.process(short)[0][8:]) == {"rc": 9}


def test_several_requests_in_one_packet(dev):
    pkt = packet(READ, 0, 0, {"d": "a"}, 1) + packet(READ, 0, 6, {}, 2) + packet(READ, 0, 99, {}, 3) \
        + packet(READ, 0, 0, {"d": "never"}, 4)
    rsps = dev.server.process(pkt)
    assert [unpack_header(r)[5] for r in rsps] == [1, 2, 3]  # stops at the first error
    assert cbor.loads(rsps[2][8:]) == {"rc": 8}


def test_response_too_big_is_emsgsize(tmp_path, images):
    d = Dev(tmp_path / "f.bin", images["v1"], buf_size=64)
    assert d.body(READ, 0, 0, {"d": "x" * 40}) == {"r": "x" * 40}
    assert d.body(READ, 0, 0, {"d": "x" * 60}) == {"rc": 7}
    d.flash.close()


# --- upload rules --------------------------------------------------------------------

def test_upload_first_chunk_checks(dev, images):
    img = images["v2"]
    up = lambda b, v=1: dev.body(WRITE, 1, 1, b, version=v)  # noqa: E731
    err = lambda rc: {"err": {"group": 1, "rc": rc}}  # noqa: E731
    assert up({"data": img[:64], "len": len(img)}) == err(20)  # no off
    assert up({"off": 0, "data": img[:16], "len": len(img)}) == err(22)  # < 32-byte header
    assert up({"off": 0, "data": img[:64]}) == err(21)  # no len
    assert up({"off": 0, "data": b"\0" * 64, "len": len(img)}) == err(23)  # magic
    assert up({"off": 0, "data": img[:64], "len": len(img), "sha": b"\1" * 33}) == err(24)
    assert up({"off": 0, "data": img[:64], "len": SLOT + 1}) == err(30)  # too large
    assert up({"off": 0, "data": images["v1"][:64], "len": 99, "upgrade": True}) == err(27)
    # v1 clients get the translated MGMT_ERR codes
    assert up({"off": 0, "data": img[:16], "len": len(img)}, 0) == {"rc": 3}
    assert up({"off": 0, "data": b"\0" * 64, "len": len(img)}, 0) == {"rc": 1}
    assert up({"off": 0, "data": img[:64], "len": 99, "off2": 1, "image": "x"}) == {"rc": 3}


def test_upload_offsets_resume_overrun_match(dev, images):
    img = images["v2"]
    sha = hashlib.sha256(img).digest()
    up = lambda b: dev.body(WRITE, 1, 1, b)  # noqa: E731
    assert up({"off": 0, "data": img[:100], "len": len(img), "sha": sha}) == {"off": 100}
    assert up({"off": 300, "data": img[300:400]}) == {"off": 100}  # wrong offset: expected off
    assert dev.flash.slot_bytes(1, 300, 100) == b"\xff" * 100  # ...and nothing written
    assert up({"off": 100, "data": img[100:250]}) == {"off": 250}
    # resume: the same sha at off 0 answers the current offset, writes nothing
    assert up({"off": 0, "data": b"\x3d\xb8\xf3\x96" + b"\0" * 60, "len": len(img), "sha": sha}) == {"off": 250}
    assert dev.flash.slot_bytes(1, 0, 250) == img[:250]
    # overrun is an error and forgets the upload
    assert up({"off": 250, "data": img[250:] + b"xx"}) == {"err": {"group": 1, "rc": 31}}
    assert up({"off": 250, "data": img[250:300]}) == {"off": 0}
    r = dev.upload(img)
    assert r == {"off": len(img), "match": True}
    # the same sha again: the slot already holds it -> done at once
    assert up({"off": 0, "data": img[:100], "len": len(img), "sha": sha}) == {"off": len(img), "match": True}


def test_upload_match_false_without_or_wrong_sha(dev, images):
    img = images["v2"]
    assert dev.upload(img, sha=False) == {"off": len(img), "match": False}
    bad = hashlib.sha256(b"other").digest()
    off = 0
    while off < len(img):
        b = {"off": off, "data": img[off:off + 500]}
        if off == 0:
            b.update(len=len(img), sha=bad)
        r = dev.body(WRITE, 1, 1, b)
        off = r["off"]
    assert r == {"off": len(img), "match": False}


def test_upload_erases_only_image_pages_and_trailer(dev, images):
    dev.flash.raw_write(1, 0, b"\0" * SLOT)  # a dirty slot
    img = images["v2"]
    dev.upload(img)
    used = (len(img) + 4095) // 4096 * 4096
    assert dev.flash.slot_bytes(1, 0, len(img)) == img
    assert dev.flash.slot_bytes(1, len(img), used - len(img)) == b"\xff" * (used - len(img))
    assert dev.flash.slot_bytes(1, used, 4096) == b"\0" * 4096  # untouched
    assert dev.flash.slot_bytes(1, SLOT - 4096) == b"\xff" * 4096  # trailer page erased


def test_progressive_erase(tmp_path, images):
    d = Dev(tmp_path / "f.bin", images["v1"], progressive_erase=True)
    d.flash.raw_write(1, 0, b"\0" * SLOT)
    img = images["v2"]
    assert d.upload(img)["match"] is True
    assert d.flash.slot_bytes(1, 0, len(img)) == img
    d.flash.close()


def test_legacy_v1_only_server(tmp_path, images):
    d = Dev(tmp_path / "f.bin", images["v1"], v1_only=True)
    h, b = d.call(READ, 0, 0, {"d": "x"}, version=1)
    assert h[1] == 0 and b == {"r": "x"}  # v1 header even to a v2 request
    img = images["v2"]
    h, b = d.call(WRITE, 1, 1, {"off": 0, "data": img[:100], "len": len(img)}, version=1)
    assert h[1] == 0 and b == {"rc": 0, "off": 100}
    assert d.body(WRITE, 1, 1, {"off": 0, "data": b"\0" * 64, "len": 99}) == {"rc": 1}
    d.flash.close()


def test_rc_errors_option(tmp_path, images):
    d = Dev(tmp_path / "f.bin", images["v1"], rc_errors=True)
    h, b = d.call(WRITE, 1, 1, {"off": 0, "data": b"\0" * 64, "len": 99}, version=1)
    assert h[1] == 1 and b == {"rc": 1}
    d.flash.close()


# --- state / test / confirm / erase --------------------------------------------------

def test_full_cycle_confirm(dev, images):
    v1, v2 = images["v1"], images["v2"]
    h2 = image_hash(v2)
    assert table(dev) == [(0, "1.0.0", "BCA")]
    dev.upload(v2)
    st = dev.body(READ, 1, 0)
    assert st["splitStatus"] == 0 and st["images"][1]["hash"] == h2
    assert table(dev) == [(0, "1.0.0", "BCA"), (1, "2.0.0", "B")]
    r = dev.body(WRITE, 1, 0, {"hash": h2, "confirm": False})
    assert [(e["slot"], flags(e)) for e in r["images"]] == [(0, "BCA"), (1, "BP")]
    # pending blocks upload and erase (v2 err 9, v1 rc 6)
    assert dev.body(WRITE, 1, 1, {"off": 0, "data": v1[:64], "len": len(v1)}) == {"err": {"group": 1, "rc": 9}}
    assert dev.body(WRITE, 1, 5, {}) == {"err": {"group": 1, "rc": 9}}
    assert dev.body(WRITE, 1, 5, {}, version=0) == {"rc": 6}
    assert dev.body(WRITE, 1, 0, {"confirm": True}) == {"err": {"group": 1, "rc": 28}}
    assert dev.boot()["action"] == "swap"
    assert table(dev) == [(0, "2.0.0", "BA"), (1, "1.0.0", "BC")]
    assert dev.body(READ, 0, 7, {"format": "v"}) == {"output": "2.0.0"}
    # unconfirmed running image: slot 1 is in use
    assert dev.body(WRITE, 1, 1, {"off": 0, "data": v1[:64], "len": len(v1)}) == {"err": {"group": 1, "rc": 9}}
    r = dev.body(WRITE, 1, 0, {"confirm": True})
    assert [(e["slot"], flags(e)) for e in r["images"]] == [(0, "BCA"), (1, "B")]
    assert dev.boot()["action"] == "none"
    assert table(dev) == [(0, "2.0.0", "BCA"), (1, "1.0.0", "B")]
    assert dev.body(WRITE, 1, 5, {}) == {}
    assert table(dev) == [(0, "2.0.0", "BCA")]


def test_revert_without_confirm(dev, images):
    v2 = images["v2"]
    dev.upload(v2)
    dev.body(WRITE, 1, 0, {"hash": image_hash(v2), "confirm": False})
    dev.boot()
    assert table(dev) == [(0, "2.0.0", "BA"), (1, "1.0.0", "BC")]
    assert dev.boot()["action"] == "revert"
    assert table(dev) == [(0, "1.0.0", "BCA"), (1, "2.0.0", "B")]
    assert dev.boot()["action"] == "none"
    assert table(dev) == [(0, "1.0.0", "BCA"), (1, "2.0.0", "B")]


def test_permanent_by_hash(dev, images):
    v3 = images["v3"]
    dev.upload(v3)
    r = dev.body(WRITE, 1, 0, {"hash": image_hash(v3), "confirm": True})
    assert [(e["slot"], e["version"], flags(e)) for e in r["images"]] == [(0, "1.0.0", "BCA"), (1, "3.1.2.7", "BPX")]
    dev.boot()
    assert table(dev) == [(0, "3.1.2.7", "BCA"), (1, "1.0.0", "B")]


def test_state_write_errors(dev, images):
    err = lambda rc: {"err": {"group": 1, "rc": rc}}  # noqa: E731
    assert dev.body(WRITE, 1, 0, {"confirm": False}) == err(24)
    assert dev.body(WRITE, 1, 0, {"hash": b"\1" * 31}) == err(24)
    assert dev.body(WRITE, 1, 0, {"hash": b"\1" * 32}) == err(8)
    assert dev.body(WRITE, 1, 0, {"hash": image_hash(images["v1"])}) == err(33)  # test the active slot
    assert dev.body(WRITE, 1, 0, {"confirm": True})["images"][0]["confirmed"] is True


def test_invalid_image_in_slot1_is_erased_not_booted(dev, images):
    v2 = bytearray(images["v2"])
    v2[1000] ^= 0xFF  # the SHA-256 TLV no longer matches
    dev.upload(bytes(v2))
    dev.body(WRITE, 1, 0, {"hash": image_hash(images["v2"]), "confirm": False})
    assert table(dev)[1][2] == "BP"
    assert dev.boot()["action"] == "erase-invalid"
    assert table(dev) == [(0, "1.0.0", "BCA")]
    assert dev.flash.is_erased(1)


def test_slot_info_and_erase_active(dev):
    assert dev.body(READ, 1, 6) == {"images": [{"image": 0, "slots": [{"slot": 0, "size": SLOT}, {"slot": 1, "size": SLOT}]}]}
    assert dev.body(WRITE, 1, 5, {"slot": 0}) == {"err": {"group": 1, "rc": 9}}
    assert dev.body(WRITE, 1, 5, {"slot": 3}) == {"err": {"group": 1, "rc": 14}}


def test_flash_timing_scaled(tmp_path, images):
    import time
    f = FlashFile(str(tmp_path / "t.bin"), SLOT, 4096, speed=0.1)
    t = time.monotonic()
    f.erase(1, 0, 4096 * 10)  # 10 pages x 85 ms x 0.1
    dt = time.monotonic() - t
    assert 0.08 < dt < 3  # upper bound loose: loaded CI machines oversleep
    t = time.monotonic()
    f.write(1, 0, b"\0" * 40000)  # 10000 words x 41 us x 0.1 = 41 ms
    assert 0.035 < time.monotonic() - t < 3
    f.write(1, 0, b"\xf0" * 4)  # NOR: bits only clear
    assert f.slot_bytes(1, 0, 4) == b"\0" * 4
    f.close()


def test_server_runs_on_micropython(run_micropython):
    """The portable server (over an in-RAM store) under real MicroPython (wasm)."""
    import os
    script = os.path.join(os.path.dirname(__file__), "emulator", "mp_server_smoke.py")
    r = run_micropython(script)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()[-5:]
    assert lines[0] == "{'r': 'hi'}"
    assert lines[1].startswith("{'output': 'Zephyr unknown v3.7.0 1.0.0 ")
    assert lines[2] == "{'images': [], 'splitStatus': 0}"
    assert "'off': 64" in lines[3] and "'match': False" in lines[3]
    assert lines[4] == "{'err': {'group': 1, 'rc': 23}}"
