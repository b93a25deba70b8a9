"""Emulated nRF52840 (Zephyr MCUmgr SMP server + MCUboot) behind a paced pty.

``Emulator`` (device and control handle), ``EmulatorConfig`` (defaults, see
docs/emulator.md) and ``main(argv)`` (the ``smpdfu emulate`` command).
"""

from .device import Emulator, EmulatorConfig


def main(argv=None):
    """``smpdfu emulate`` entry point (see :mod:`.cli`)."""
    from .cli import main as _main
    return _main(argv)


__all__ = ["Emulator", "EmulatorConfig", "main"]
