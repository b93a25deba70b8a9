"""`make demo` end to end: the firmware app on real MicroPython (node + wasm)
updates the emulated nRF over a pty; plus its error cases on the same path."""

import io
import os
import re
import subprocess
import sys

import pytest

from smpdfu_host import demo

REPO = demo.REPO_ROOT
FAST = ["--flash-speed=0"]  # instant flash: no 10 s slot erase in tests


@pytest.fixture(autouse=True)
def _need_node():
    from conftest import node_command

    node_command()  # fails with a hint when node or the wasm package is missing


def test_demo_command_at_115200(tmp_path):
    # the same command as `make demo`, with a smaller image and instant flash
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "lib"), os.path.join(REPO, "host")]))
    r = subprocess.run([sys.executable, "-m", "smpdfu_host.demo", "--baud", "115200", "--size", "8000",
                        "--emulator-arg=--flash-speed=0"],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "at 115200 baud, running 1.0.0" in out
    assert "demo: the board side is firmware/main.py on real MicroPython 1." in out
    # the whole update, as the board (MicroPython) printed it
    for text in ("board | neighbour runs 1.0.0; image is 1.1.0", "board |   upload 100%",
                 "board | marking 1.1.0 for a test boot", "board | resetting the neighbour",
                 "board | neighbour is back, running 1.1.0 (test boot)", "board | 1.1.0 confirmed",
                 "nRF | boot: swap type test, swap, running 1.1.0", "nRF | confirm slot=0"):
        assert text in out, text
    assert out.index("upload 100%") < out.index("resetting") < out.index("1.1.0 confirmed")
    last = out.strip().splitlines()[-1]
    assert re.match(r"demo OK: updated: 1\.0\.0 -> 1\.1\.0, \d+ bytes in [\d.]+ s \([\d.]+ kB/s upload\)$", last), last


def run(**kw):
    buf = io.StringIO()
    kw.setdefault("baud", 1000000)
    kw.setdefault("emulator_args", FAST)
    res = demo.run_demo(out=buf, **kw)
    res["text"] = buf.getvalue()
    return res


def test_demo_bad_image_fails_before_uploading(tmp_path):
    img = demo.make_image(str(tmp_path / "app.bin"), "1.1.0", 4000)
    data = bytearray(open(img, "rb").read())
    data[-10] ^= 0xFF  # inside the SHA-256 TLV
    open(img, "wb").write(bytes(data))
    res = run(image=img, expect="failed")
    assert res["ok"], res["text"]
    assert "bad image /update/app.bin" in res["text"]
    assert res["status"]["image"] == "/update/app.bin.bad"
    assert "upload-start" not in res["events"] and res["after"] == "1.0.0"


def test_demo_already_up_to_date(tmp_path):
    res = run(version="1.0.0", size=4000, expect="up-to-date")
    assert res["ok"], res["text"]
    assert "the neighbour already runs 1.0.0" in res["text"]
    assert "upload-start" not in res["events"] and "reset" not in res["events"]
    assert res["status"]["image"] == "/update/app.bin.done"


def test_demo_no_neighbour(tmp_path):
    res = run(no_neighbour=True, size=4000, expect="failed", settings={"CONNECT_MS": 800})
    assert res["ok"], res["text"]
    assert "no answer from the neighbour within 800 ms" in res["text"]
    assert res["status"]["transient"] is True and res["status"]["image"] == "/update/app.bin"
