"""Helpers for the firmware app tests: load the app and a board config on CPython,
and run the app against an in-process emulated nRF."""

import importlib.util
import os
import pathlib
import shutil
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"
BOARDS = REPO / "boards"

# Fast emulator settings for tests: a quick UART, instant flash, short boot.
FAST_EMU = dict(baud=1000000, flash_speed=0, boot_ms=30, reset_ms=30)


def load_module(name, path):
    """Import the file ``path`` as module ``name`` (fresh each call), registered in sys.modules.

    firmware/ is deliberately not put on sys.path: its code.py would shadow
    the standard library's ``code`` module.
    """
    spec = importlib.util.spec_from_file_location(name, str(path))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def load_app():
    """firmware/smpdfu_app.py as ``smpdfu_app``, with the modules it imports by name
    (its board side; on some boards CircuitPython's hardware, the BLE link) loaded beside it."""
    app = load_module("smpdfu_app", FIRMWARE / "smpdfu_app.py")
    for name in ("smpdfu_board", "smpdfu_busio", "smpdfu_ble_link"):
        load_module(name, FIRMWARE / (name + ".py"))
    return app


def load_board(board, tmp_path, **overrides):
    """boards/<board>.py as ``board_config``, with its files moved under ``tmp_path``."""
    cfg = load_module("board_config", BOARDS / (board + ".py"))
    upd = tmp_path / "update"
    upd.mkdir(exist_ok=True)
    cfg.IMAGE_PATH = str(upd / "app.bin")
    cfg.STATUS_PATH = str(upd / "status.json")
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def place_image(cfg, image):
    """Copy an image file to the board's IMAGE_PATH."""
    shutil.copyfile(image, cfg.IMAGE_PATH)


def listing(cfg):
    return sorted(os.listdir(os.path.dirname(cfg.IMAGE_PATH)))


class Log:
    """A ``log`` callable collecting the app's lines."""

    def __init__(self):
        self.lines = []

    def __call__(self, text):
        self.lines.append(text)

    def text(self):
        return "\n".join(self.lines)


class PowerCut(BaseException):
    """Raised by a test to stop the app at a chosen step, like pulling the plug.

    A BaseException, so nothing in the app or the updater can swallow it."""
