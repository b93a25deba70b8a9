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

``proc_factory(*cli_args)`` -> an :class:`EmulatorProcess`: ``python -m
smpdfu_host.emulator`` as a subprocess (what ``smpdfu emulate`` runs) with
``--baud 1000000 --flash-speed 0 --boot-ms 20 --reset-ms 20 --no-banner``
prepended (later flags win). It has ``path``, ``lines`` (stdout so far),
``wait_line(substring, timeout)``, ``command("drop_rx 1")`` and the same fault
methods as the in-process handle (sent over stdin), and ``stop()``.
"""

import os
import subprocess
import sys
import threading
import time

import pytest

from smpdfu_host.emulator import Emulator

FAST = dict(baud=1000000, flash_speed=0, boot_ms=20, reset_ms=20, banner=False)
FAST_ARGS = ["--baud", "1000000", "--flash-speed", "0", "--boot-ms", "20", "--reset-ms", "20",
             "--no-banner"]
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class EmulatorProcess:
    """``python -m smpdfu_host.emulator ARGS`` with its pty path and stdin control."""

    def __init__(self, args, env=None):
        e = dict(os.environ)
        e["PYTHONPATH"] = os.pathsep.join([os.path.join(_ROOT, "lib"), os.path.join(_ROOT, "host")]
                                          + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
        if env:
            e.update(env)
        self.proc = subprocess.Popen([sys.executable, "-m", "smpdfu_host.emulator"] + list(args),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1, env=e)
        self.lines = []
        self._cond = threading.Condition()
        first = self.proc.stdout.readline()
        if not first.startswith("pty: "):
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.proc.kill()
            raise RuntimeError("emulator did not print its pty: %r %s" % (first, err))
        self.path = first.split(":", 1)[1].strip()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_line(self, text, timeout=10.0, start=0):
        """Wait until a stdout line (from index ``start``) contains ``text``; returns it."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                for ln in self.lines[start:]:
                    if text in ln:
                        return ln
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError("no line with %r; got %r" % (text, self.lines))
                self._cond.wait(min(left, 0.2))

    def command(self, text, timeout=5.0):
        """Send a control command; returns its ``ok ...`` reply line."""
        with self._cond:
            start = len(self.lines)
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                for ln in self.lines[start:]:
                    if ln.startswith("ok") or ln.startswith("error"):
                        return ln
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no reply to %r" % text)
                self._cond.wait(left)

    def drop_rx_lines(self, n=1):
        return self.command("drop_rx %d" % n)

    def corrupt_rx_lines(self, n=1):
        return self.command("corrupt_rx %d" % n)

    def drop_tx_lines(self, n=1):
        return self.command("drop_tx %d" % n)

    def corrupt_tx_lines(self, n=1):
        return self.command("corrupt_tx %d" % n)

    def delay_responses(self, ms, n=1):
        return self.command("delay %d %d" % (ms, n))

    def reset_after_chunks(self, n):
        return self.command("reset_after_chunks %d" % n)

    def reset(self):
        return self.command("reset")

    def log_every(self, ms, text=""):
        return self.command(("log_every %d %s" % (ms, text)).strip())

    def stall_rx(self, ms):
        return self.command("stall_rx %d" % ms)

    def running_version(self):
        return self.command("version").split(" ", 1)[1]

    def stop(self):
        """SIGTERM, wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stderr):
            try:
                f.close()
            except Exception:
                pass
        return self.proc.returncode


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
