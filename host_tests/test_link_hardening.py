"""The link against a new user's mishaps (issue 9, items 5 and 6), through the CLI
and the emulated nRF on a pty: a port held by another program, a stray byte on
the device's line.
"""

import io
import json
import os

import pytest

from emulator.fixtures import proc_factory  # noqa: F401  (pytest fixture)
from imagegen import make_image
from test_e2e_cli import one_error_line, smpdfu

from smpdfu.pyserial_uart import PySerialUART

pytest.importorskip("serial")


def test_a_second_program_on_the_port_gets_port_busy_at_once(proc_factory, tmp_path):  # noqa: F811
    emu = proc_factory("--flash", tmp_path / "flash.bin")
    first = PySerialUART(emu.path, 1000000)
    try:
        with pytest.raises(OSError) as e:
            PySerialUART(emu.path, 1000000)
        assert "port busy" in str(e.value) and emu.path in str(e.value)
        r = smpdfu(emu.path, "echo", "hi", check=False, timeout=10)
        assert r.returncode == 1
        assert one_error_line(r.stderr) == ("error: cannot open port %s: port busy: another program has %s open"
                                            % (emu.path, emu.path))
    finally:
        first.close()
    assert smpdfu(emu.path, "echo", "free again").stdout.strip() == "free again"


def _stray_byte(path):
    # Noise, or a client killed mid-line: one byte and no newline.
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)


def test_a_stray_byte_on_the_line_does_not_swallow_the_next_command(proc_factory, tmp_path):  # noqa: F811
    emu = proc_factory("--flash", tmp_path / "flash.bin")
    _stray_byte(emu.path)
    assert smpdfu(emu.path, "echo", "after noise").stdout.strip() == "after noise"
    img = make_image(tmp_path / "a.bin", version="1.1.0", size=3000, seed=3)
    _stray_byte(emu.path)
    r = smpdfu(emu.path, "image", "upload", img)
    assert "device hash check: match" in r.stdout


def test_reset_wait_returns_once_the_device_answers_again(proc_factory, tmp_path):  # noqa: F811
    emu = proc_factory("--flash", tmp_path / "flash.bin", "--boot-ms", "600")
    n = len(emu.lines)
    r = smpdfu(emu.path, "reset")
    assert "does not answer until it is back (reset --wait" in r.stdout
    emu.wait_line("boot: swap type none", timeout=10, start=n)
    r = smpdfu(emu.path, "reset", "--wait", "10", "--json")
    d = json.loads(r.stdout)
    assert d["ok"] and d["reset"] and d["back_after"] >= 0.3
    # the device is back: the next command needs no retry or wait
    assert smpdfu(emu.path, "--timeout", "0.5", "echo", "back").stdout.strip() == "back"


def test_image_too_large_names_the_image_and_the_slot(proc_factory, tmp_path):  # noqa: F811
    emu = proc_factory("--flash", tmp_path / "flash.bin", "--slot-size", "0x4000", "--factory-size", "2000")
    img = make_image(tmp_path / "big.bin", version="1.1.0", size=20000, seed=3)
    r = smpdfu(emu.path, "image", "upload", img, check=False)
    assert r.returncode == 1
    line = one_error_line(r.stderr)
    assert line.startswith("error: image too large: %s is %d bytes; the device's image 0 slots are 16384/16384 bytes"
                           % (img, os.path.getsize(img))), line


def test_upload_says_it_resumes_when_it_starts(tmp_path):
    from smpdev import SMPDevice
    from test_client_pyserial import PtyDevice

    from smpdfu import mcuboot

    img = make_image(tmp_path / "r.bin", version="1.1.0", size=3000, seed=4)
    data = open(img, "rb").read()
    info = mcuboot.verify(io.BytesIO(data))
    dev = PtyDevice(SMPDevice())
    try:
        dev.dev.start_upload(len(data), info.file_sha, data[:1000])
        code, out, err = _run("--port", dev.path, "image", "upload", img, "--no-progress")
        assert code == 0, err
        assert err.splitlines()[0] == "resuming at byte 1000 of %d (the device kept an earlier, interrupted upload)" % len(data)
        assert "resumed from offset 1000" in out
        # the image in a slot already: nothing is sent at all
        uploads = dev.dev.upload_requests
        code, out, err = _run("--port", dev.path, "image", "upload", img, "--no-progress")
        assert code == 0, err
        assert out.strip() == "%s is already on the device (image 0 slot 1): nothing sent" % img
        assert dev.dev.upload_requests == uploads
    finally:
        dev.close()


def _run(*argv):
    from smpdfu_host import cli

    out, err = io.StringIO(), io.StringIO()
    code = cli.run([str(a) for a in argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_update_checks_first_and_sends_nothing_needless(proc_factory, tmp_path):  # noqa: F811
    emu = proc_factory("--flash", tmp_path / "flash.bin")
    old = make_image(tmp_path / "old.bin", version="0.9.0", size=3000, seed=5)
    r = smpdfu(emu.path, "update", old, check=False)
    assert r.returncode == 1
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: update failed: the neighbour runs 1.0.0, newer than the image's 0.9.0")
    assert line.endswith("nothing sent: --allow-downgrade sends it anyway")
    assert emu.event_kinds().count("upload-start") == 0
    new = make_image(tmp_path / "new.bin", version="1.2.0", size=3000, seed=6)
    smpdfu(emu.path, "update", new)
    assert emu.event_kinds().count("upload-start") == 1
    r = smpdfu(emu.path, "update", new, "--json")
    d = json.loads(r.stdout)
    assert d["ok"] and d["outcome"] == "up-to-date" and d["bytes"] == 0
    assert d["message"] == "the neighbour already runs 1.2.0: nothing sent"
    assert emu.event_kinds().count("upload-start") == 1  # nothing sent the second time
    # an image already in slot 1 is not sent again
    newer = make_image(tmp_path / "newer.bin", version="1.3.0", size=3000, seed=7)
    smpdfu(emu.path, "image", "upload", newer)
    r = smpdfu(emu.path, "update", newer)
    assert "the image is already on the neighbour, nothing sent (next step: test)" in r.stderr
    assert emu.event_kinds().count("upload-start") == 2
    r = smpdfu(emu.path, "update", old, "--allow-downgrade")
    assert emu.event_kinds().count("upload-start") == 3 and "0.9.0" in r.stdout
