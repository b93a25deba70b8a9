"""Upload progress on stderr: a redrawn bar on a terminal, plain lines otherwise.

``Progress(total)`` is a callable ``progress(done[, total])`` that an upload
calls after every acknowledged chunk; it redraws at most every
``interval`` seconds so a fast link does not spend its time printing.
"""

import sys
import time


def fmt_bytes(n):
    """``"65,536 B"``: byte counts with thousands separators."""
    return "{:,} B".format(int(n))


def fmt_rate(bps):
    """``"7.4 kB/s"`` (kB = 1000 bytes, as throughput is usually quoted)."""
    if bps >= 1e6:
        return "%.2f MB/s" % (bps / 1e6)
    return "%.1f kB/s" % (bps / 1e3)


def fmt_eta(seconds):
    """``"0:05"`` / ``"1:02:03"``; ``"--:--"`` when unknown."""
    if seconds is None or seconds < 0 or seconds > 360000:
        return "--:--"
    s = int(seconds + 0.5)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if h:
        return "%d:%02d:%02d" % (h, m, s)
    return "%d:%02d" % (m, s)


class Progress:
    """Progress of a transfer of ``total`` bytes.

    ``mode``: ``"bar"`` (one line redrawn with ``\\r``; for terminals),
    ``"lines"`` (a plain line every ``line_step`` percent or ``line_interval``
    seconds; for logs and pipes) or ``"off"``; ``"auto"`` picks ``"bar"`` when
    ``stream`` is a tty, else ``"lines"``. ``clock`` is injectable for tests.
    """

    def __init__(self, total, stream=None, mode="auto", label="upload", width=30,
                 interval=0.1, line_interval=2.0, line_step=10, clock=time.monotonic):
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            isatty = getattr(self.stream, "isatty", None)
            mode = "bar" if isatty and isatty() else "lines"
        if mode not in ("bar", "lines", "off"):
            raise ValueError("progress mode must be bar, lines, off or auto, not %r" % mode)
        self.mode = mode
        self.label = label
        self.width = width
        self.interval = interval
        self.line_interval = line_interval
        self.line_step = line_step
        self.clock = clock
        self.t0 = None
        self.start_done = 0  # a resumed upload starts part way: rate counts from here
        self.done = 0
        self._last_draw = None
        self._last_pct = -1
        self._drawn = False
        self._printed = None  # ``done`` at the last plain line
        self.finished = False

    # ------------------------------------------------------------ numbers

    def elapsed(self):
        return 0.0 if self.t0 is None else self.clock() - self.t0

    def rate(self):
        """Bytes per second since the first update (None until measurable)."""
        dt = self.elapsed()
        moved = self.done - self.start_done
        if dt <= 0 or moved <= 0:
            return None
        return moved / dt

    def eta(self):
        r = self.rate()
        if not r:
            return None
        return (self.total - self.done) / r

    def percent(self):
        return 100.0 * self.done / self.total if self.total else 100.0

    # ------------------------------------------------------------ updates

    def __call__(self, done, total=None):
        if total:
            self.total = total
        now = self.clock()
        if self.t0 is None:
            self.t0 = now
            self.start_done = done
        self.done = done
        if self.mode == "off":
            return
        complete = self.total and done >= self.total
        if self.mode == "bar":
            if complete or self._last_draw is None or now - self._last_draw >= self.interval:
                self._draw_bar()
                self._last_draw = now
        else:
            pct = int(self.percent())
            step = pct // self.line_step if self.line_step else pct
            due = self._last_draw is None or now - self._last_draw >= self.line_interval
            if complete or step != self._last_pct or due:
                self._line()
                self._last_pct = step
                self._last_draw = now

    def status(self):
        """The numbers as text: ``45%  29,440/65,536 B  7.4 kB/s  ETA 0:05``."""
        r = self.rate()
        return "%3d%%  %s/%s  %s  ETA %s" % (
            int(self.percent()), "{:,}".format(self.done), fmt_bytes(self.total),
            fmt_rate(r) if r else "-- kB/s", fmt_eta(self.eta()))

    def _draw_bar(self):
        frac = self.done / self.total if self.total else 1.0
        fill = int(self.width * min(frac, 1.0))
        bar = "#" * fill + "." * (self.width - fill)
        self.stream.write("\r%s [%s] %s " % (self.label, bar, self.status()))
        self.stream.flush()
        self._drawn = True

    def _line(self):
        self._printed = self.done
        self.stream.write("%s: %s\n" % (self.label, self.status()))
        self.stream.flush()

    def finish(self, message=None):
        """End the display (newline after a bar); optionally print ``message``."""
        if self.finished:
            return
        if self.mode == "bar" and self._drawn:
            self._draw_bar()
            self.stream.write("\n")
        elif self.mode == "lines" and self.t0 is not None and self._printed != self.done:
            self._line()
        if message and self.mode != "off":
            self.stream.write(message + "\n")
        self.stream.flush()
        self.finished = True
