"""pytest fixtures for the board-adapter tests: the emulated nRF over BLE
(smpdfu_host.emulator.ble) and the board's own Bumble stack reaching it."""

import sys

import pytest

import imagegen
from smpdfu_host.emulator.ble import BLEEmulator

from . import bumble_bleio, bumble_bluetooth
from .world import World

# Fast flash and boots; the air-time model off (throughput is `make bench`'s).
FAST_BLE = dict(flash_speed=0, boot_ms=30, reset_ms=30, timing=False, name="smp-nrf")


@pytest.fixture
def world():
    w = World()
    yield w
    w.close()


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A 40 kB imgtool image, version 2.0.0 (the emulated nRF runs 1.0.0)."""
    return imagegen.make_image(tmp_path_factory.mktemp("bleimg") / "v2.bin", version="2.0.0", size=40000, seed=3)


@pytest.fixture
def emu_factory():
    started = []

    def make(**kw):
        opts = dict(FAST_BLE)
        opts.update(kw)
        e = BLEEmulator(**opts).start()
        started.append(e)
        return e

    yield make
    for e in started:
        e.stop()


@pytest.fixture
def nrf(emu_factory):
    """The emulated nRF52840 running smp_svr over BLE, advertising as "smp-nrf"."""
    return emu_factory()


def use_bluetooth(monkeypatch, world, emu, **radio):
    """Make ``import bluetooth`` give a board radio on ``world`` that reaches ``emu``."""
    monkeypatch.setitem(sys.modules, "bluetooth", bumble_bluetooth)
    return bumble_bluetooth.attach(world, emu.hci, **radio)


def use_bleio(monkeypatch, world, emu):
    """Make ``import _bleio`` give a board radio on ``world`` that reaches ``emu``;
    adafruit_ble and smpdfu.ble_cp are imported afresh on top of it."""
    for name in list(sys.modules):
        if name == "adafruit_ble" or name.startswith("adafruit_ble.") or name == "smpdfu.ble_cp":
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "_bleio", bumble_bleio)
    return bumble_bleio.attach(world, emu.hci)
