"""``make demo``: the on-board app updates an emulated nRF, on real MicroPython.

    python -m smpdfu_host.demo [--baud 115200] [--version 1.1.0] [--size 40960]
                               [--image FILE] [--no-neighbour] [--expect OUTCOME]

1. starts the emulated nRF52840 (Zephyr MCUmgr + MCUboot, factory image 1.0.0)
   on a pty paced at ``--baud``;
2. makes a fresh MCUboot image with imgtool (``--version``, ``--size`` payload
   bytes), unless ``--image`` names one;
3. runs ``firmware/main.py`` on MicroPython (the npm WebAssembly build, under
   node: ``host/smpdfu_host/mpy/demo.mjs``) with the ``host`` board config, its UART
   bridged to the pty, and the image at ``/update/app.bin``;
4. checks the board's status file and the emulator's own state list, and ends
   with a one-line summary.

Exit status 0 when the outcome is the expected one (``updated`` by default)
and, for an update, the emulator really runs the new version, confirmed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from smpdfu_host.emulator.process import EmulatorProcess
from smpdfu_host.imgtool_image import make_image

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO_MJS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpy", "demo.mjs")


def run_echoed(cmd, timeout, out, prefix, name="demo", cut_at=None, **popen_kw):
    """Run ``cmd``, echoing its output line by line with ``prefix``; returns (returncode, lines).

    ``cut_at``: kill it (a power cut) as soon as it prints a line containing this.
    A run past ``timeout`` seconds is killed and says so in the last line."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen_kw)
    lines = []

    def pump():
        for line in iter(p.stdout.readline, ""):
            line = line.rstrip("\n")
            lines.append(line)
            out.write(prefix + line + "\n")
            out.flush()
            if cut_at and cut_at in line:
                p.kill()
                out.write("%s: power cut\n" % name)
                return

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        rc = p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
        lines.append("%s: MicroPython did not finish within %d s" % (name, timeout))
    t.join(5)
    return rc, lines


def device_state(pty, baud):
    """``(running version, confirmed)`` as the device itself reports over SMP."""
    from smpdfu.client import SMPClient
    from smpdfu.transport import SerialTransport
    from smpdfu.pyserial_uart import PySerialUART

    t = SerialTransport(PySerialUART(pty, baud))
    try:
        c = SMPClient(t, timeout_ms=3000)
        c.wait_until_ready(5000)
        for s in c.image_state():
            if s.active:
                return s.version, s.confirmed
        return None, False
    finally:
        t.close()


def micropython_version():
    """The MicroPython release the harness runs (its npm package's version)."""
    try:
        with open(os.path.join(os.path.dirname(DEMO_MJS), "package.json")) as f:
            deps = json.load(f)["dependencies"]
        return deps["@micropython/micropython-webassembly-pyscript"]
    except (OSError, ValueError, KeyError):
        return "(version unknown)"


def _board_side(pty):
    # Said before the board's lines: what runs on the "board" side of the demo.
    return ("demo: the board side is firmware/main.py on real MicroPython %s (its WebAssembly build under "
            "node), with what `make deploy BOARD=host` copies; its UART is %s" % (micropython_version(), pty))


def run_board(pty, image=None, out_dir=None, status=None, settings=None, timeout=120,
              prefix="board | ", out=None, files=None):
    """Run firmware/main.py on MicroPython (node) against ``pty``; returns (returncode, output lines).

    ``files``: a file listing "SRC DEST" lines to install instead of the whole lib/."""
    out = out or sys.stdout
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not installed (needed to run MicroPython's WebAssembly build)")
    cmd = [node, DEMO_MJS, "--pty", pty]
    if files:
        cmd += ["--files", files]
    if image:
        cmd += ["--image", image]
    if status:
        cmd += ["--status", status]
    if out_dir:
        cmd += ["--out", out_dir]
    for k, v in (settings or {}).items():
        cmd += ["--set", "%s=%s" % (k, json.dumps(v))]
    return run_echoed(cmd, timeout, out, prefix, cwd=REPO_ROOT)


def _deploy_list(work):
    # The board gets exactly what `make deploy BOARD=host` would copy: "src dest" lines.
    from smpdfu_host.deploy import plan

    files = os.path.join(work, "deploy-files.txt")
    with open(files, "w") as f:
        for src, dest in plan("host"):
            f.write("%s %s\n" % (src, dest))
    return files


def _read_status(out_dir):
    # The board's status file (the app writes it at the end), or {}.
    try:
        with open(os.path.join(out_dir, "status.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def summary_line(ok, status, before, after, wall, name="demo"):
    """The demo's last line: outcome, versions, bytes and upload speed (``make demo-fota`` shares it)."""
    outcome = status.get("outcome")
    if outcome in ("updated", "up-to-date", "reverted") or status.get("bytes"):
        text = "%s -> %s, %d bytes in %.1f s (%.1f kB/s upload)" % (
            status.get("before") or before, after, status.get("bytes", 0), status.get("seconds", wall),
            status.get("bytes", 0) / 1000.0 / (status.get("upload_seconds") or 1e9))
    else:
        text = status.get("message") or "no status from the board"
    return "%s %s: %s: %s" % (name, "OK" if ok else "FAILED", outcome or "no outcome", text)


def run_demo(baud=115200, version="1.1.0", size=40 * 1024, image=None, no_neighbour=False,
             expect="updated", settings=None, out=None, workdir=None, emulator_args=()):
    """Run the whole demo; return a dict: ``ok``, ``outcome``, ``status`` (the board's
    status file), ``before``/``after`` (the emulator's running version), ``lines``
    (the board's output), ``events`` (the emulator's event kinds), ``summary``."""
    out = out or sys.stdout
    lock = threading.Lock()

    def say(text):
        with lock:
            out.write(text + "\n")
            out.flush()

    own_tmp = workdir is None
    work = workdir or tempfile.mkdtemp(prefix="smpdfu-demo-")
    emu = None
    master = slave = None
    try:
        if image is None:
            image = make_image(os.path.join(work, "app.bin"), version, size)
            say("demo: made %s with imgtool: version %s, %d bytes" % (image, version, os.path.getsize(image)))
        if no_neighbour:
            master, slave = os.openpty()  # a UART with nobody on the other end
            pty = os.ttyname(slave)
            say("demo: no neighbour: %s has nothing behind it" % pty)
            before = None
        else:
            emu = EmulatorProcess(emulator_args, baud=baud, flash=os.path.join(work, "flash.bin"),
                                  echo=out, prefix="  nRF | ", merge_stderr=True)
            pty = emu.path
            before = emu.running_version()
            say("demo: emulated nRF52840 on %s at %d baud, running %s" % (pty, baud, before))
        out_dir = os.path.join(work, "board-update")
        t0 = time.monotonic()
        files = _deploy_list(work)
        say(_board_side(pty))
        rc, lines = run_board(pty, image, out_dir, settings=settings, out=out, files=files)
        wall = time.monotonic() - t0
        status = _read_status(out_dir)
        outcome = status.get("outcome")
        after = None
        confirmed = False
        if emu is not None:
            after, confirmed = device_state(pty, baud)
        ok = rc == 0 and outcome == expect
        if ok and expect == "updated":
            ok = after == status.get("image_version") and confirmed
        summary = summary_line(ok, status, before, after if emu is not None else "?", wall)
        events = emu.event_kinds() if emu is not None else []
        if emu is not None:
            emu.stop()  # first, so that the summary is the last line
        say(summary)
        return {"ok": ok, "outcome": outcome, "status": status, "before": before, "after": after,
                "confirmed": confirmed, "lines": lines, "returncode": rc, "summary": summary,
                "events": events}
    finally:
        if emu is not None:
            emu.stop()
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m smpdfu_host.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--version", default="1.1.0", help="version of the image to make (factory is 1.0.0)")
    ap.add_argument("--size", type=int, default=40 * 1024, help="payload bytes of the image to make")
    ap.add_argument("--image", help="use this image instead of making one")
    ap.add_argument("--no-neighbour", action="store_true", help="nothing on the UART (an error case)")
    ap.add_argument("--expect", default="updated", help="outcome that counts as success")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=JSON",
                    help="override a host board setting, e.g. CONNECT_MS=1500")
    ap.add_argument("--emulator-arg", action="append", default=[], metavar="ARG",
                    help="pass an option to the emulator, e.g. --emulator-arg=--flash-speed=0")
    a = ap.parse_args(argv)
    settings = {}
    for s in a.set:
        k, _, v = s.partition("=")
        settings[k] = json.loads(v)
    res = run_demo(a.baud, a.version, a.size, a.image, a.no_neighbour, a.expect, settings,
                   emulator_args=a.emulator_arg)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
