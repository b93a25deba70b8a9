"""pytest fixtures that run the emulated nRF (``smpdfu_host.emulator``).

Import them into a test module (pytest then finds them)::

    from emulator.fixtures import emu_factory, proc_factory, fast_emu  # noqa: F401

``emu_factory(**options)`` -> a started in-process :class:`Emulator` (stopped at
teardown). Options are :class:`EmulatorConfig` keywords; the factory's defaults
make tests quick: ``baud=1000000, flash_speed=0, boot_ms=20, reset_ms=20,
banner=False``; pass e.g. ``baud=115200`` or ``flash_speed=1`` to get real timing.
The emulator object is the control handle:

- ``emu.path``: the pty to open (any serial client, any baud);
- faults: ``drop_rx_lines(n)``, ``corrupt_rx_lines(n)``, ``drop_tx_lines(n)``,
  ``corrupt_tx_lines(n)``, ``delay_responses(ms, n)``, ``reset_after_chunks(n)``,
  ``reset()``, ``log_every(ms, text=None)``, ``console(text)``, ``stall_rx(ms)``;
- state: ``state()`` (image list as the device reports it), ``running_version()``,
  ``counters()`` (drops at every transport layer), ``events`` and
  ``wait_event(kind, timeout, after=0)`` (kinds: factory, reset, boot,
  upload-start, upload-progress, upload-done, test, confirm, erase).

``fast_emu``: one emulator with the fast defaults.

``proc_factory(*cli_args)`` -> a started
:class:`smpdfu_host.emulator.process.EmulatorProcess`: ``python -m
smpdfu_host.emulator`` as a subprocess (what ``smpdfu emulate`` runs) with
``--baud 1000000 --flash-speed 0 --boot-ms 20 --reset-ms 20 --no-banner``
prepended (later flags win), stopped at teardown. It has ``path``, ``lines``
(its event lines so far), ``wait_line(substring, timeout, start=0)``,
``command("drop_rx 1")`` and the same fault methods as the in-process handle
(sent over stdin), and ``stop()``.
"""

import pytest

from smpdfu_host.emulator import Emulator
from smpdfu_host.emulator.process import EmulatorProcess

FAST = dict(baud=1000000, flash_speed=0, boot_ms=20, reset_ms=20, banner=False)
FAST_ARGS = ["--baud", "1000000", "--flash-speed", "0", "--boot-ms", "20", "--reset-ms", "20",
             "--no-banner"]


@pytest.fixture
def emu_factory():
    """Start in-process emulators: ``emu_factory(**options)`` (fast defaults, see module doc)."""
    started = []

    def make(**kw):
        opts = dict(FAST)
        opts.update(kw)
        emu = Emulator(**opts).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def fast_emu(emu_factory):
    """One started in-process emulator with the fast defaults."""
    return emu_factory()


@pytest.fixture
def proc_factory():
    """Start emulator subprocesses: ``proc_factory("--flash", path, ...)``."""
    started = []

    def make(*args):
        p = EmulatorProcess(FAST_ARGS + [str(a) for a in args])
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()
