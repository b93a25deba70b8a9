"""``make demo BLE=1``: the on-board app updates the emulated nRF over BLE.

    python -m smpdfu_host.demo_ble [--version 1.1.0] [--size 40960] [--emulator-arg ARG]

1. starts ``smpdfu emulate --ble`` (smp_svr over BLE: 2M PHY, 7.5 ms, MTU
   498, reassembly; nRF52840 flash timing), factory image 1.0.0;
2. makes a fresh MCUboot image with imgtool;
3. runs the board app (``firmware/smpdfu_app.py``) with the ``host`` board
   config set to ``TRANSPORT = "ble"`` -- on CPython, through the Bumble
   adapter (``smpdfu_host.ble_bumble``): the app code and the portable BLE
   transport are the ones a board runs, the radio is the PC's;
4. checks the board's status file and, over BLE, that the nRF runs the new
   version, confirmed.
"""

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time

from smpdfu_host.emulator.process import EmulatorProcess
from smpdfu_host.imgtool_image import make_image

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _load(name, path):
    # A module from a file of the repo (boards/, firmware/: not packages).
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO_ROOT, path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def board_config(**settings):
    """A fresh copy of ``boards/host.py`` with ``settings`` applied."""
    cfg = _load("board_config", os.path.join("boards", "host.py"))
    for k, v in settings.items():
        setattr(cfg, k, v)
    return cfg


def device_state(hci, name):
    """``(running version, confirmed)`` as the device reports over BLE."""
    from smpdfu.ble import BLETransport
    from smpdfu.client import SMPClient
    from smpdfu_host.ble_bumble import BumbleAdapter

    t = BLETransport(BumbleAdapter(hci), name)
    try:
        for s in SMPClient(t, timeout_ms=3000).image_state():
            if s.active:
                return s.version, s.confirmed
        return None, False
    finally:
        t.close()


def run_demo(version="1.1.0", size=40 * 1024, emulator_args=(), out=None):
    """Run the BLE demo; return a dict: ``ok``, ``outcome``, ``after``, ``confirmed``, ``summary``."""
    out = out or sys.stdout

    def say(text):
        out.write(text + "\n")
        out.flush()

    work = tempfile.mkdtemp(prefix="smpdfu-demo-ble-")
    emu = None
    try:
        upd = os.path.join(work, "update")
        os.mkdir(upd)
        image = make_image(os.path.join(upd, "app.bin"), version, size)
        say("demo: made %s with imgtool: version %s, %d bytes" % (image, version, os.path.getsize(image)))
        emu = EmulatorProcess(["--ble"] + list(emulator_args), flash=os.path.join(work, "flash.bin"),
                              echo=out, prefix="  nRF | ", merge_stderr=True)
        say("demo: emulated nRF52840 advertising as %r (Bumble link %s)" % (emu.name, emu.hci))
        say("demo: the board app runs on CPython with the Bumble adapter (TRANSPORT = \"ble\")")
        cfg = board_config(TRANSPORT="ble", BLE_TARGET=emu.name, BLE_HCI=emu.hci, MAX_PACKET=2475,
                           IMAGE_PATH=image, STATUS_PATH=os.path.join(upd, "status.json"))
        app = _load("smpdfu_app", os.path.join("firmware", "smpdfu_app.py"))
        # The app imports its board side and BLE link by name: as on a board.
        sys.modules["smpdfu_app"] = app
        sys.modules["smpdfu_board"] = _load("smpdfu_board", os.path.join("firmware", "smpdfu_board.py"))
        sys.modules["smpdfu_ble_link"] = _load("smpdfu_ble_link", os.path.join("firmware", "smpdfu_ble_link.py"))
        t0 = time.monotonic()
        res = app.run(cfg, "machine", log=lambda s: say("board | " + s))
        wall = time.monotonic() - t0
        after, confirmed = device_state(emu.hci, emu.name)
        ok = res is not None and res.outcome == "updated" and after == version and confirmed
        summary = "demo %s: %s: 1.0.0 -> %s%s in %.1f s" % (
            "OK" if ok else "FAILED", res.outcome if res else "no outcome", after,
            " (confirmed)" if confirmed else "", wall)
        emu.stop()
        say(summary)
        return {"ok": ok, "outcome": res.outcome if res else None, "after": after, "confirmed": confirmed,
                "summary": summary}
    finally:
        if emu is not None:
            emu.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m smpdfu_host.demo_ble", description=__doc__.split("\n")[0])
    ap.add_argument("--version", default="1.1.0", help="version of the image to make (factory is 1.0.0)")
    ap.add_argument("--size", type=int, default=40 * 1024, help="payload bytes of the image to make")
    ap.add_argument("--emulator-arg", action="append", default=[], metavar="ARG",
                    help="pass an option to the emulator, e.g. --emulator-arg=--phy=1")
    a = ap.parse_args(argv)
    return 0 if run_demo(a.version, a.size, a.emulator_arg)["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
