"""pytest fixtures for the board-adapter tests: the emulated nRF over BLE
(smpdfu_host.emulator.ble) and the board's own Bumble stack reaching it."""

import pytest

from smpdfu_host.emulator.ble import BLEEmulator

from .world import World

# Fast flash and boots; the air-time model off (throughput is `make bench`'s).
FAST_BLE = dict(flash_speed=0, boot_ms=30, reset_ms=30, timing=False, name="smp-nrf")


@pytest.fixture
def world():
    w = World()
    yield w
    w.close()


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
