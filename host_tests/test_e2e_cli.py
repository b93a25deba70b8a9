"""End to end: the ``smpdfu`` CLI (a subprocess) updates the emulated nRF (a subprocess)
over its pty, with imgtool-made images; hashes are checked against ``imgtool verify``.

Most runs use 1 Mbaud and instant flash for speed; one runs at 115200 baud
with real nRF52840 flash timing and a small image.
"""

import json
import os
import subprocess
import sys

import pytest

from emulator.fixtures import proc_factory  # noqa: F401  (pytest fixture)
from imagegen import imgtool_verify, make_image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "lib"), os.path.join(REPO, "host")]))


def smpdfu(port, *argv, baud=1000000, timeout=60, check=True):
    """Run ``python -m smpdfu_host --port PORT --baud BAUD ARGV``; CompletedProcess (text)."""
    r = subprocess.run([sys.executable, "-m", "smpdfu_host", "--port", port, "--baud", str(baud)]
                       + [str(a) for a in argv], capture_output=True, text=True,
                       timeout=timeout, env=ENV, cwd=REPO)
    if check and r.returncode != 0:
        raise AssertionError("smpdfu %s -> %d\nstdout: %s\nstderr: %s"
                             % (" ".join(map(str, argv)), r.returncode, r.stdout, r.stderr))
    return r


def state(port, baud=1000000):
    d = json.loads(smpdfu(port, "image", "list", "--json", baud=baud).stdout)
    assert d["ok"] is True
    return {s["slot"]: s for s in d["images"]}


def one_error_line(err):
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith("upload")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    v2 = make_image(d / "v2.bin", version="2.0.0", size=12000, seed=5)
    v3 = make_image(d / "v3.bin", version="3.1.0+7", size=6000, key="ecdsa-p256", seed=6)
    small = make_image(d / "small.bin", version="1.5.0", size=3000, seed=7)
    return {"v2": (v2, imgtool_verify(v2).digest),
            "v3": (v3, imgtool_verify(v3, key="ecdsa-p256").digest),
            "small": (small, imgtool_verify(small).digest)}


def test_upload_test_reset_confirm_cycle(proc_factory, tmp_path, images):  # noqa: F811
    emu = proc_factory("--flash", tmp_path / "flash.bin")
    port = emu.path
    path, digest = images["v2"]
    assert digest

    st = state(port)
    assert list(st) == [0] and st[0]["active"] and st[0]["confirmed"]
    factory_hash = st[0]["hash"]

    r = smpdfu(port, "image", "upload", path, "--json")
    up = json.loads(r.stdout)
    assert up["ok"] and up["match"] is True and up["hash"] == digest
    assert up["size"] == os.path.getsize(path) and up["resumed_from"] == 0
    assert "upload:" not in r.stderr  # no progress output with --json
    st = state(port)
    assert st[1]["hash"] == digest and st[1]["version"] == "2.0.0"
    assert st[1]["bootable"] and not (st[1]["pending"] or st[1]["active"] or st[1]["confirmed"])

    st = {s["slot"]: s for s in json.loads(smpdfu(port, "image", "test", digest, "--json").stdout)["images"]}
    assert st[1]["pending"] and not st[1]["permanent"]

    assert json.loads(smpdfu(port, "reset", "--json").stdout) == {"ok": True, "reset": True}
    emu.wait_line("boot: swap type test", timeout=10)
    st = state(port)
    assert st[0]["hash"] == digest and st[0]["active"] and not st[0]["confirmed"]
    assert st[1]["hash"] == factory_hash and st[1]["confirmed"]  # MCUboot's view after a test swap

    r = smpdfu(port, "image", "confirm")
    assert "active confirmed" in r.stdout and digest in r.stdout  # the text table
    st = state(port)
    assert st[0]["hash"] == digest and st[0]["active"] and st[0]["confirmed"]
    assert not st[1]["confirmed"] and not st[1]["pending"]

    # permanent: survives a reset without a confirm from the app
    n = len(emu.lines)
    smpdfu(port, "reset")
    emu.wait_line("boot: swap type none", timeout=10, start=n)
    st = state(port)
    assert st[0]["hash"] == digest and st[0]["confirmed"]


def test_device_errors_and_text_output(proc_factory, tmp_path, images):  # noqa: F811
    emu = proc_factory("--flash", tmp_path / "flash.bin")
    port = emu.path
    path, digest = images["v3"]

    r = smpdfu(port, "echo", "hello there")
    assert r.stdout == "hello there\n"
    p = json.loads(smpdfu(port, "params", "--json").stdout)
    assert p["buf_size"] >= 256 and p["buf_count"] >= 1
    info = json.loads(smpdfu(port, "info", "--json").stdout)
    assert info["bootloader"] == "MCUboot" and "Zephyr" in info["os_info"]
    slots = json.loads(smpdfu(port, "image", "slots", "--json").stdout)
    assert [s["slot"] for s in slots["images"][0]["slots"]] == [0, 1]

    # a file failing the local check: refused, unless --no-verify; then the device refuses it
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 8)
    r = smpdfu(port, "image", "upload", junk, check=False)
    assert r.returncode == 1 and "bad image" in one_error_line(r.stderr)
    r = smpdfu(port, "image", "upload", junk, "--no-verify", check=False)
    assert r.returncode == 1
    warn, err = r.stderr.splitlines()
    assert warn.startswith("warning: %s fails the local check (bad image magic" % junk)
    assert err == "error: ImageError: INVALID_IMAGE_HEADER_MAGIC (23)"

    r = smpdfu(port, "image", "upload", path, "--window", "1", "--chunk", "128")
    assert "device hash check: match" in r.stdout and digest in r.stdout
    # plain progress lines on stderr (not a tty), ending at 100 %
    prog = [l for l in r.stderr.splitlines() if l.startswith("upload: ")]
    assert len(prog) >= 5 and prog[-1].startswith("upload: 100%")
    # the server's wording of the version (build number appended)
    assert state(port)[1]["version"] == "3.1.0.7"
    smpdfu(port, "image", "test", digest)
    # a pending slot 1: the device refuses a new upload and an erase
    r = smpdfu(port, "image", "upload", images["small"][0], check=False)
    assert r.returncode == 1
    assert one_error_line(r.stderr) == "error: ImageError: NO_FREE_SLOT (9)"
    r = smpdfu(port, "image", "erase", "--json", check=False)
    assert r.returncode == 1
    d = json.loads(r.stdout)
    # Zephyr: NO_FREE_SLOT under SMP v2 (EBADSTATE in the v1 rc form)
    assert d["ok"] is False and d["error"] in ("ImageError: NO_FREE_SLOT (9)", "DeviceError: EBADSTATE (6)")
    # an unknown hash
    r = smpdfu(port, "image", "test", "00" * 32, check=False)
    assert r.returncode == 1 and one_error_line(r.stderr).startswith("error: ImageError: ")

    # the table shows both slots with words for the flags
    r = smpdfu(port, "image", "state")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["image", "slot", "version", "flags", "hash"]
    assert "active confirmed" in lines[1] and "pending" in lines[2] and digest in lines[2]


def test_update_command_whole_cycle(proc_factory, tmp_path, images):  # noqa: F811
    emu = proc_factory("--flash", tmp_path / "flash.bin")
    path, digest = images["v3"]
    r = smpdfu(emu.path, "update", path, "--json")
    d = json.loads(r.stdout)
    assert d["ok"] and d["upload"]["hash"] == digest
    st = {s["slot"]: s for s in d["images"]}
    assert st[0]["hash"] == digest and st[0]["active"] and st[0]["confirmed"]
    assert state(emu.path)[0]["hash"] == digest
    assert "boot: swap type test" in "\n".join(emu.lines)


def test_slow_link_115200_real_flash_timing(proc_factory, tmp_path, images):  # noqa: F811
    emu = proc_factory("--baud", "115200", "--flash-speed", "1", "--flash", tmp_path / "flash.bin")
    path, digest = images["small"]
    r = smpdfu(emu.path, "image", "upload", path, "--json", baud=115200)
    up = json.loads(r.stdout)
    assert up["match"] is True and up["hash"] == digest
    assert state(emu.path, baud=115200)[1]["hash"] == digest


def test_timeout_when_the_device_stops_answering(proc_factory, tmp_path, images):  # noqa: F811
    emu = proc_factory("--flash", tmp_path / "flash.bin")
    emu.command("drop_tx 1000")  # the device hears but its answers are lost
    r = smpdfu(emu.path, "--timeout", "0.4", "image", "list", check=False)
    assert r.returncode == 1
    assert one_error_line(r.stderr) == "error: device did not answer within 0.4 s (image list)"


def test_update_goes_through_updater_up_to_date_and_no_confirm(proc_factory, tmp_path, images):  # noqa: F811
    emu = proc_factory("--flash", tmp_path / "flash.bin")
    path, digest = images["v3"]
    r = smpdfu(emu.path, "update", path, "--no-confirm", "--json")
    d = json.loads(r.stdout)
    assert d["ok"] and d["outcome"] == "updated" and d["upload"]["hash"] == digest
    st = {s["slot"]: s for s in d["images"]}
    assert st[0]["hash"] == digest and st[0]["active"] and not st[0]["confirmed"]  # a test boot, left as is
    # the next run confirms what runs (no upload), the one after finds it up to date
    d = json.loads(smpdfu(emu.path, "update", path, "--json").stdout)
    assert d["ok"] and d["outcome"] == "updated" and "upload" not in d and d["resumed"]
    d = json.loads(smpdfu(emu.path, "update", path, "--json").stdout)
    assert d["ok"] and d["outcome"] == "up-to-date" and "upload" not in d
    assert state(emu.path)[0]["confirmed"]
