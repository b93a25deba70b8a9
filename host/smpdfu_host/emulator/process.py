"""The emulated nRF as a child process: ``python -m smpdfu_host.emulator ARGS``.

What ``smpdfu emulate`` runs, driven the way a test, the demo or the benchmark
needs it::

    with EmulatorProcess(["--flash-speed", "0"], baud=115200, flash="flash.bin") as emu:
        port = emu.path                      # the pty, e.g. /dev/pts/5
        emu.wait_line("boot: swap type none")
        emu.drop_rx_lines(2)                 # a fault, sent over stdin
        emu.running_version()                # "1.0.0"

The child prints ``pty: /dev/pts/N`` (with ``--ble``: ``ble: name=NAME
hci=SPEC``, then :attr:`name` and :attr:`hci` are set and ``path`` is the
SPEC) first, then one line per event (see
:mod:`smpdfu_host.emulator.cli`); it answers each control command on stdin
with one ``ok ...`` (or ``error ...``) line. A reader thread keeps draining
its stdout (so a chatty emulator never blocks on a full pipe): reply lines go
to :meth:`command`, all other lines to :attr:`lines` and, when ``echo`` is a
stream, are copied there with ``prefix``. Its stderr goes to a temporary file
(:meth:`stderr_text`) unless ``merge_stderr`` mixes it into stdout.
"""

import os
import subprocess
import sys
import tempfile
import threading
import time


def _python_path(env):
    # lib/ (smpdfu) and host/ (smpdfu_host) first, wherever they are
    import smpdfu

    paths = [os.path.dirname(os.path.dirname(os.path.abspath(smpdfu.__file__))),
             os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    return os.pathsep.join(paths)


def _is_reply(line):
    return line.startswith("ok") or line.startswith("error")


class EmulatorProcess:
    """A running ``python -m smpdfu_host.emulator`` child; ``path`` is its pty.

    ``args``: emulator options (``smpdfu emulate --help``); ``baud`` and
    ``flash``, when given, go before them (so ``args`` win). ``echo``: a text
    stream to copy event lines to, each after ``prefix``. ``via_cli``: run
    ``python -m smpdfu_host emulate`` instead (the user's command). ``python``: the
    interpreter (default: this one). ``env``: more environment variables.
    ``start_timeout``: seconds to wait for the ``pty:`` line, else
    RuntimeError. Stop it with :meth:`stop` or use it as a context manager.
    """

    def __init__(self, args=(), baud=None, flash=None, echo=None, prefix="", via_cli=False,
                 python=None, env=None, merge_stderr=False, start_timeout=15.0):
        argv = []
        if baud is not None:
            argv += ["--baud", str(baud)]
        if flash is not None:
            argv += ["--flash", str(flash)]
        argv += [str(a) for a in args]
        mod = ["-m", "smpdfu_host", "emulate"] if via_cli else ["-m", "smpdfu_host.emulator"]
        self.cmd = [python or sys.executable] + mod + argv
        e = dict(os.environ)
        e["PYTHONPATH"] = _python_path(e)
        e["PYTHONUNBUFFERED"] = "1"
        if env:
            e.update(env)
        self.echo = echo
        self.prefix = prefix
        self.path = None
        self.name = self.hci = None  # with --ble: the advertised name and the HCI spec
        self.lines = []  #: event lines so far (without the pty line and command replies)
        self._replies = []
        self._cond = threading.Condition()
        self._err = None if merge_stderr else tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT if merge_stderr else self._err,
                                     text=True, bufsize=1, env=e)
        self._reader = threading.Thread(target=self._read, daemon=True, name="emulator-stdout")
        self._reader.start()
        with self._cond:
            self._cond.wait_for(lambda: self.path is not None or self.proc.poll() is not None,
                                start_timeout)
            started = self.path is not None
        if not started:
            self.stop()
            raise RuntimeError("the emulator did not start (%s): %s %s"
                               % (" ".join(self.cmd), "\n".join(self.lines), self.stderr_text()))

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            event = False
            with self._cond:
                if self.path is None and line.startswith("pty: "):
                    self.path = line[5:].strip()
                elif self.path is None and line.startswith("ble: "):
                    # --ble: "ble: name=NAME hci=SPEC"; path is the SPEC to reach it
                    f = dict(kv.split("=", 1) for kv in line[5:].split())
                    self.name, self.hci = f.get("name"), f.get("hci")
                    self.path = self.hci
                elif _is_reply(line):
                    self._replies.append(line)
                else:
                    self.lines.append(line)
                    event = True
                self._cond.notify_all()
            if event and self.echo is not None:
                self.echo.write(self.prefix + line + "\n")
                self.echo.flush()
        with self._cond:
            self._cond.notify_all()  # the child has gone: nobody waits in vain

    # --- output ----------------------------------------------------------------

    def wait_line(self, text, timeout=10.0, start=0):
        """Wait until an event line (from index ``start`` of :attr:`lines`) contains
        ``text``; return it. TimeoutError after ``timeout`` s or when the child ends."""
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

    def event_kinds(self):
        """The first word of each event line (``factory``, ``boot``, ``upload``...)."""
        with self._cond:
            return [ln.split()[0].rstrip(":") for ln in self.lines if ln.strip()]

    def stderr_text(self):
        """What the child wrote on stderr so far ("" when merged into stdout)."""
        if self._err is None or self._err.closed:
            return ""
        self._err.seek(0)
        return self._err.read().decode(errors="replace")

    # --- control commands (stdin) --------------------------------------------------

    def command(self, text, timeout=5.0):
        """Send a control command (e.g. ``"drop_rx 1"``); return its ``ok ...`` or
        ``error ...`` reply line. TimeoutError when none comes within ``timeout`` s."""
        with self._cond:
            n = len(self._replies)
            self.proc.stdin.write(text + "\n")
            self.proc.stdin.flush()
            if not self._cond.wait_for(lambda: len(self._replies) > n or self.proc.poll() is not None,
                                       timeout) or len(self._replies) <= n:
                raise TimeoutError("the emulator did not answer %r" % text)
            return self._replies[n]

    def drop_rx_lines(self, n=1):
        """Fault: the device loses the next ``n`` received lines."""
        return self.command("drop_rx %d" % n)

    def corrupt_rx_lines(self, n=1):
        """Fault: the next ``n`` received lines arrive with a flipped byte."""
        return self.command("corrupt_rx %d" % n)

    def drop_tx_lines(self, n=1):
        """Fault: the next ``n`` lines the device sends are lost."""
        return self.command("drop_tx %d" % n)

    def corrupt_tx_lines(self, n=1):
        """Fault: the next ``n`` lines the device sends have a flipped byte."""
        return self.command("corrupt_tx %d" % n)

    def delay_responses(self, ms, n=1):
        """Fault: the next ``n`` responses come ``ms`` late."""
        return self.command("delay %d %d" % (ms, n))

    def reset_after_chunks(self, n):
        """Fault: the device resets after the ``n``-th upload chunk."""
        return self.command("reset_after_chunks %d" % n)

    def reset(self):
        """Reset the device now (as its reset pin would)."""
        return self.command("reset")

    def log_every(self, ms, text=""):
        """Interleave a Zephyr log line every ``ms`` ms on the UART (0 = stop)."""
        return self.command(("log_every %d %s" % (ms, text)).strip())

    def stall_rx(self, ms):
        """Fault: the device reads nothing for ``ms`` ms."""
        return self.command("stall_rx %d" % ms)

    def console(self, text):
        """Write ``text`` (plus CR LF) on the device's UART, as its console would."""
        return self.command("console %s" % text)

    def running_version(self):
        """The version the device runs (``"1.0.0"``), or None when nothing boots."""
        r = self.command("version")
        return r.split(" ", 1)[1] if " " in r else None

    # --- lifecycle -----------------------------------------------------------

    def stop(self, timeout=10):
        """SIGTERM (SIGKILL after ``timeout`` s) to this child by its pid, wait, and
        let the reader finish (its last lines are echoed before this returns).
        Returns the exit code; safe to call twice."""
        p = self.proc
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self._reader is not threading.current_thread():
            self._reader.join(5)
        for f in (p.stdin, p.stdout):
            try:
                f.close()
            except OSError:
                pass
        return p.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
