"""Run the emulated nRF as a subprocess (for the end-to-end tests and the benchmark).

``Emulator(flash_path, baud=..., extra=[...])`` starts ``python -m
smpdfu_host.emulator`` (or ``python -m smpdfu emulate`` with ``via_cli``),
waits for its first line ``pty: /dev/pts/N`` and exposes ``.port``; ``stop()``
ends it (by its own pid). Usable as a context manager.
"""

import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def repo_env():
    """os.environ with lib/ and host/ on PYTHONPATH."""
    env = dict(os.environ)
    paths = [os.path.join(REPO, "lib"), os.path.join(REPO, "host")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Emulator:
    """A running emulator subprocess; ``.port`` is its pty."""

    def __init__(self, flash, baud=115200, extra=(), via_cli=False, python=None, start_timeout=15):
        python = python or sys.executable
        mod = ["-m", "smpdfu", "emulate"] if via_cli else ["-m", "smpdfu_host.emulator"]
        self.cmd = [python] + mod + ["--baud", str(baud), "--flash", str(flash)] + [str(a) for a in extra]
        self.baud = baud
        # Output goes to files, not pipes: an emulator that logs a lot must
        # never block on a pipe nobody reads.
        self._log = tempfile.TemporaryFile()
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._err,
                                     env=repo_env(), cwd=REPO)
        self.port = None
        t0 = time.monotonic()
        while self.port is None:
            for line in self.output().splitlines():
                if line.startswith("pty: "):
                    self.port = line[5:].strip()
                    break
            else:
                if time.monotonic() - t0 > start_timeout or self.proc.poll() is not None:
                    out, err = self.output(), self.stop()
                    raise RuntimeError("emulator did not start (%s): %s %s" % (" ".join(self.cmd), out, err))
                time.sleep(0.02)

    @staticmethod
    def _read(f):
        f.seek(0)
        return f.read().decode(errors="replace")

    def output(self):
        """What the emulator printed on stdout so far."""
        return self._read(self._log)

    def stop(self, timeout=5):
        """Terminate the emulator (our own child, by pid); return its stderr text."""
        p = self.proc
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout)
        return self._read(self._err)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
