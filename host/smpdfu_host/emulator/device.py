"""The emulated nRF: SMP server + MCUboot flash behind a paced pty UART.

:class:`Emulator` is both the device and its control handle (fault
injection, state inspection, events). See ``docs/emulator.md`` for the
defaults and the Zephyr/nRF52840 figures they imitate.
"""

import collections
import os
import queue
import tempfile
import threading
import time
import tty

from smpdfu.header import HEADER_SIZE
from smpdfu.errcodes import MGMT_ERR_ENOMEM
from smpdfu.server import SMPServer, unpack_header
from smpdfu.server_image import ImageGroup
from smpdfu.server_os import OSGroup

from . import bootloader
from .flash import PAGE_SIZE, SLOT_SIZE, FlashFile
from .uart import FrameAssembler, LineBuffers, NetBufPool, split_lines, zephyr_frame

BANNER = "*** Booting Zephyr OS build v3.7.0 ***\r\n"


class EmulatorConfig:
    """Emulator settings; every keyword of :class:`Emulator` is an attribute here."""

    defaults = dict(
        baud=115200,              # UART speed, 8N1 (10 bits per byte) both ways
        flash=None,               # flash file path; None: a temporary file
        slot_size=SLOT_SIZE,      # 0x76000, nrf52840dk slot0/slot1
        page_size=PAGE_SIZE,      # 4 KiB nRF52840 flash page
        buf_size=384,             # CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE
        buf_count=4,              # CONFIG_MCUMGR_TRANSPORT_NETBUF_COUNT
        line_bufs=2,              # CONFIG_UART_MCUMGR_RX_BUF_COUNT
        line_buf_size=128,        # CONFIG_UART_MCUMGR_RX_BUF_SIZE
        v1_only=False,            # v1 headers, rc errors, "rc": 0 (legacy rc behaviour)
        rc_errors=False,          # rc-form errors even to v2 requests
        flash_speed=1.0,          # scale of NVMC timings (0 = instant)
        progressive_erase=False,  # CONFIG_IMG_ERASE_PROGRESSIVELY
        image_check=True,         # CONFIG_IMG_ENABLE_IMAGE_CHECK ("match")
        stall_rx_on_flash=True,   # line decoder halted during NVMC operations
        boot_ms=300,              # reset -> app ready (plus any swap time)
        reset_ms=250,             # CONFIG_MCUMGR_GRP_OS_RESET_MS
        banner=True,              # print the Zephyr boot banner after boot
        log_every_ms=0,           # interleave a log line every N ms (0: off)
        factory_version="1.0.0",  # image put in slot 0 of a new flash file
        factory_size=48 * 1024,   # payload bytes of that image
        factory_image=None,       # or a path to an imgtool image to use
        reset_after_chunks=0,     # fault: reset after N upload chunks (0: off)
        reset_busy=False,         # reset refused with EBUSY unless force
        bootloader_mode=3,        # bootloader info "mode": 3 = swap using move
    )

    def __init__(self, **kw):
        for k, v in self.defaults.items():
            setattr(self, k, v)
        for k, v in kw.items():
            if k not in self.defaults:
                raise TypeError("unknown emulator option %r" % k)
            setattr(self, k, v)


class Emulator:
    """An emulated nRF52840 running Zephyr + MCUmgr + MCUboot on a pty.

    Usage::

        emu = Emulator(baud=1000000, flash_speed=0).start()
        port = emu.path              # /dev/pts/N, open it with any SMP client
        emu.drop_rx_lines(1)         # fault injection, see the methods below
        emu.state()                  # image state list as the device reports it
        emu.wait_event("boot")       # events: factory, reset, boot, upload-start,
                                     # upload-progress, upload-done, test, confirm, erase
        emu.stop()

    ``on_event(kind, info)`` is called for every event (the CLI prints them).
    """

    def __init__(self, config=None, on_event=None, **kw):
        self.cfg = config if config is not None else EmulatorConfig(**kw)
        if config is not None and kw:
            for k, v in kw.items():
                setattr(self.cfg, k, v)
        self.on_event = on_event
        self.events = []
        self._ev_cond = threading.Condition()
        self.path = None
        self.running = False
        self.down = True
        self.bricked = False
        self.epoch = 0
        self.stats = collections.Counter()
        self._faults = collections.Counter()
        self._delay_ms = 0
        self._reset_at = None
        self._crash = False
        self._chunks = 0
        self._stall_until = 0.0
        self._log_every = self.cfg.log_every_ms
        self._log_text = None
        self._boot_time = time.monotonic()
        self._tx_lock = threading.Lock()
        self._rx_lock = threading.RLock()
        self._tx_clock = 0.0
        self._rx_clock = 0.0
        self._q = queue.Queue()
        self._pending = collections.deque()
        self._tmp_flash = None
        self._threads = []
        self._last_decile = -1

    # --- lifecycle -------------------------------------------------------------

    def start(self):
        """Create the flash (factory image if new), open the pty, boot. Returns self."""
        c = self.cfg
        self._open_flash()
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.lines = LineBuffers(c.line_bufs, c.line_buf_size)
        self.pool = NetBufPool(c.buf_count)
        self.asm = FrameAssembler(c.buf_size, self.pool)
        self.running = True
        self._boot("power-on")
        for fn in (self._rx_loop, self._worker_loop, self._log_loop):
            t = threading.Thread(target=fn, daemon=True, name="emu" + fn.__name__)
            t.start()
            self._threads.append(t)
        return self

    def _open_flash(self):
        # The flash file (temporary unless configured), with a factory image when new.
        c = self.cfg
        path = c.flash
        if path is None:
            fd, path = tempfile.mkstemp(prefix="smpdfu-flash-", suffix=".bin")
            os.close(fd)
            os.remove(path)
            self._tmp_flash = path
        self.flash = FlashFile(path, c.slot_size, c.page_size, c.flash_speed)
        if self.flash.new or bootloader.image_extent(self.flash, 0) is None:
            if c.factory_image:
                with open(c.factory_image, "rb") as f:
                    img = f.read()
            else:
                img = bootloader.make_factory_image(c.factory_version, c.factory_size, c.slot_size)
            bootloader.install_factory(self.flash, img)
            self._emit("factory", version=c.factory_version if not c.factory_image else None,
                       size=len(img))

    def stop(self):
        """Stop the threads and close the pty and the flash file."""
        if not self.running:
            return
        self.running = False
        for t in self._threads:
            t.join(5)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self._close_flash()

    def _close_flash(self):
        self.flash.close()
        if self._tmp_flash and os.path.exists(self._tmp_flash):
            os.remove(self._tmp_flash)

    def __enter__(self):
        return self.start() if not self.running else self

    def __exit__(self, *exc):
        self.stop()

    # --- events ------------------------------------------------------------------

    def _emit(self, kind, **info):
        with self._ev_cond:
            self.events.append((time.monotonic(), kind, info))
            self._ev_cond.notify_all()
        if self.on_event is not None:
            self.on_event(kind, info)

    def event_count(self, kind=None):
        """Number of events so far (of ``kind`` when given)."""
        with self._ev_cond:
            return sum(1 for e in self.events if kind is None or e[1] == kind)

    def wait_event(self, kind, timeout=10.0, after=0):
        """Wait for the ``after+1``-th event of ``kind``; returns its info dict (or raises TimeoutError)."""
        end = time.monotonic() + timeout
        with self._ev_cond:
            while True:
                hits = [e[2] for e in self.events if e[1] == kind]
                if len(hits) > after:
                    return hits[after]
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no %r event within %.1f s" % (kind, timeout))
                self._ev_cond.wait(left)

    def _image_listener(self, kind, info):
        if kind == "upload-chunk":
            self._chunks += 1
            self.stats["upload_chunks"] += 1
            n = self.cfg.reset_after_chunks
            if n and self._chunks >= n:
                self.cfg.reset_after_chunks = 0
                self._crash = True
            size = info["size"] or 1
            dec = info["off"] * 10 // size
            if dec != self._last_decile:
                self._last_decile = dec
                self._emit("upload-progress", percent=dec * 10, off=info["off"], size=info["size"])
            return
        if kind == "upload-start":
            self._last_decile = -1
        self._emit(kind, **info)

    # --- boot / reset --------------------------------------------------------------

    def _new_server(self):
        c = self.cfg
        self.server = SMPServer(c.buf_size, c.buf_count, c.v1_only, c.rc_errors)
        self.images = ImageGroup(self.flash, c.progressive_erase, c.image_check, self._image_listener)
        self.os_group = OSGroup(self.running_version, self._request_reset,
                                bootloader_mode=c.bootloader_mode, reset_busy=c.reset_busy)
        self.server.register(self.os_group)
        self.server.register(self.images)

    def _boot(self, reason):
        self.down = True
        self.epoch += 1
        with self._rx_lock:
            self.lines.reset()
            self.asm.reset()
            self._pending.clear()
            self.pool.reset()
            while True:
                try:
                    self._q.get_nowait()
                except queue.Empty:
                    break
        self._reset_at = None
        self._crash = False
        self._chunks = 0
        if reason != "power-on":
            self._emit("reset", reason=reason)
        res = bootloader.boot(self.flash)
        self._new_server()
        self._emit("boot", **res)
        if not res["bootable"]:
            self.bricked = True
            return
        time.sleep(self.cfg.boot_ms / 1000.0)
        self._boot_time = time.monotonic()
        self.down = False
        if self.cfg.banner:
            self._tx(BANNER.encode())

    def _request_reset(self):
        self._reset_at = time.monotonic() + self.cfg.reset_ms / 1000.0

    def running_version(self):
        """Version string of the running image (slot 0)."""
        return self.images.running_version() if hasattr(self, "images") else None

    def state(self):
        """The image state list as the device would report it (list of dicts)."""
        return ImageGroup(self.flash).state_list()

    # --- threads ------------------------------------------------------------------

    def _stalled(self):
        return (self.down or time.monotonic() < self._stall_until
                or (self.cfg.stall_rx_on_flash and self.flash.busy))

    def _drain(self):
        with self._rx_lock:
            while self._pending and not self._stalled():
                line = self._pending.popleft()
                self.lines.release()
                pkt = self.asm.process(line)
                if pkt is not None:
                    self.stats["rx_packets"] += 1
                    self._q.put((pkt, self.epoch))

    def _rx_fault(self, line):
        if not (line.startswith(b"\x06\x09") or line.startswith(b"\x04\x14")):
            return line
        if self._faults["drop_rx"] > 0:
            self._faults["drop_rx"] -= 1
            self.stats["rx_lines_dropped_fault"] += 1
            return None
        if self._faults["corrupt_rx"] > 0:
            self._faults["corrupt_rx"] -= 1
            self.stats["rx_lines_corrupted_fault"] += 1
            return _corrupt(line)
        return line

    def _rx_loop(self):
        import select
        bit = 10.0 / self.cfg.baud
        while self.running:
            try:
                r, _, _ = select.select([self.master], [], [], 0.002)
            except (OSError, ValueError):
                return
            self._drain()
            if not r:
                continue
            try:
                data = os.read(self.master, 4096)
            except BlockingIOError:
                continue
            except OSError:
                time.sleep(0.01)
                continue
            if not data:
                continue
            self.stats["rx_bytes"] += len(data)
            if self.down:
                self.stats["rx_bytes_while_down"] += len(data)
                continue
            t0 = max(self._rx_clock, time.monotonic())
            self._rx_clock = t0 + len(data) * bit
            pos = 0
            while pos < len(data):
                nl = data.find(b"\n", pos)
                end = len(data) if nl < 0 else nl + 1
                if nl >= 0:
                    wait = t0 + end * bit - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                with self._rx_lock:
                    if self.down:
                        break
                    for line in self.lines.feed(data[pos:end]):
                        line = self._rx_fault(line)
                        if line is None:
                            self.lines.release()
                        else:
                            self._pending.append(line)
                self._drain()
                pos = end

    def _worker_loop(self):
        while self.running:
            if self._reset_at is not None and time.monotonic() >= self._reset_at:
                self._boot("os-reset")
                continue
            if self.bricked:
                time.sleep(0.05)
                continue
            try:
                pkt, epoch = self._q.get(timeout=0.01)
            except queue.Empty:
                continue
            if epoch != self.epoch:
                continue
            if self.pool.alloc():
                rsp = self.server.process(pkt)
                held = 2
            else:
                rsp = []  # smp_alloc_rsp failed: MGMT_ERR_ENOMEM answered in the request buffer
                if len(pkt) >= HEADER_SIZE:
                    op, ver, _f, _l, grp, seq, cmd = unpack_header(pkt)
                    rsp = [self.server.error_packet(op, ver, grp, seq, cmd, MGMT_ERR_ENOMEM)]
                held = 1
            if self._crash or epoch != self.epoch:
                self.pool.free(held)
                if self._crash:
                    self._boot("fault: reset after upload chunk")
                continue
            for r in rsp:
                self._send_packet(r)
            self.pool.free(held)

    def _send_packet(self, pkt):
        if self._delay_ms and self._faults["delay"] > 0:
            self._faults["delay"] -= 1
            time.sleep(self._delay_ms / 1000.0)
        lines = split_lines(zephyr_frame(pkt))
        out = []
        for ln in lines:
            if self._faults["drop_tx"] > 0:
                self._faults["drop_tx"] -= 1
                self.stats["tx_lines_dropped_fault"] += 1
                continue
            if self._faults["corrupt_tx"] > 0:
                self._faults["corrupt_tx"] -= 1
                self.stats["tx_lines_corrupted_fault"] += 1
                ln = _corrupt(ln)
            out.append(ln)
        self.stats["tx_packets"] += 1
        self._tx(b"".join(out), lines=True)

    def _tx(self, data, lines=False):
        """Send bytes paced at the baud rate, line by line, whole frames under one lock."""
        bit = 10.0 / self.cfg.baud
        chunks = split_lines(data) if lines else [data]
        with self._tx_lock:
            for ch in chunks:
                if not self.running:
                    return
                t = max(self._tx_clock, time.monotonic()) + len(ch) * bit
                self._tx_clock = t
                wait = t - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self._write(ch)

    def _write(self, data):
        mv = memoryview(data)
        while mv:
            try:
                n = os.write(self.master, mv)
            except BlockingIOError:
                self.stats["tx_bytes_dropped_full"] += len(mv)  # nobody reading: bytes lost
                return
            except OSError:
                return
            self.stats["tx_bytes"] += n
            mv = mv[n:]

    def _log_loop(self):
        n = 0
        next_t = time.monotonic()
        while self.running:
            every = self._log_every
            time.sleep(0.005 if every else 0.05)
            if not every or self.down:
                next_t = time.monotonic() + (every or 0) / 1000.0
                continue
            now = time.monotonic()
            if now < next_t:
                continue
            next_t = now + every / 1000.0
            n += 1
            up = now - self._boot_time
            ms = int(up * 1000)
            text = self._log_text or "heartbeat %d" % n
            line = "[%02d:%02d:%02d.%03d,%03d] <inf> app: %s\r\n" % (
                ms // 3600000, ms // 60000 % 60, ms // 1000 % 60, ms % 1000,
                int(up * 1e6) % 1000, text)
            self.stats["log_lines"] += 1
            self._tx(line.encode())

    # --- control handle (fault injection) -----------------------------------------------

    def drop_rx_lines(self, n=1):
        """Drop the next ``n`` frame lines the device receives (lost on the wire)."""
        self._faults["drop_rx"] += n

    def corrupt_rx_lines(self, n=1):
        """Corrupt one base64 character in each of the next ``n`` received frame lines."""
        self._faults["corrupt_rx"] += n

    def drop_tx_lines(self, n=1):
        """Drop the next ``n`` lines of responses the device sends."""
        self._faults["drop_tx"] += n

    def corrupt_tx_lines(self, n=1):
        """Corrupt one character in each of the next ``n`` response lines."""
        self._faults["corrupt_tx"] += n

    def delay_responses(self, ms, n=1):
        """Hold each of the next ``n`` responses back ``ms`` milliseconds."""
        self._delay_ms = ms
        self._faults["delay"] += n

    def reset_after_chunks(self, n):
        """Reset (no response) after the ``n``-th upload chunk from now is written."""
        self._chunks = 0
        self.cfg.reset_after_chunks = n

    def reset(self):
        """Reset the device now (like the reset pin), via the worker thread."""
        self._reset_at = time.monotonic()

    def log_every(self, ms, text=None):
        """Interleave a Zephyr-style log line every ``ms`` ms (0 stops)."""
        self._log_text = text
        self._log_every = ms

    def console(self, text):
        """Write console text on the UART now (between frames)."""
        self._tx(text.encode() if isinstance(text, str) else text)

    def stall_rx(self, ms):
        """Stop the line decoder for ``ms`` ms (received lines queue in the line buffers)."""
        self._stall_until = time.monotonic() + ms / 1000.0

    def counters(self):
        """Transport counters: drops at every layer, packets, bytes."""
        d = dict(self.stats)
        d.update(lines_dropped_no_buffer=self.lines.dropped_no_buffer,
                 lines_dropped_too_long=self.lines.dropped_too_long,
                 frames_bad=self.asm.bad_frames, frames_too_big=self.asm.too_big,
                 frames_no_netbuf=self.asm.no_buffer, netbuf_failures=self.pool.failures,
                 requests=self.server.requests)
        return d

    def command(self, line):
        """Run a text command (the subprocess control protocol); returns a reply string."""
        parts = line.split()
        if not parts:
            return ""
        name, args = parts[0], [int(a) if a.lstrip("-").isdigit() else a for a in parts[1:]]
        fn = _COMMANDS.get(name)
        if fn is None:
            return "error unknown command %s" % name
        res = fn(self, *args)
        return "ok" if res is None else "ok %s" % res


def _corrupt(line):
    b = bytearray(line)
    i = min(max(2, len(b) // 2), len(b) - 2)
    if i >= 2:
        b[i] = ord("A") if b[i] != ord("A") else ord("B")
    return bytes(b)


_COMMANDS = {
    "drop_rx": Emulator.drop_rx_lines,
    "corrupt_rx": Emulator.corrupt_rx_lines,
    "drop_tx": Emulator.drop_tx_lines,
    "corrupt_tx": Emulator.corrupt_tx_lines,
    "delay": Emulator.delay_responses,
    "reset_after_chunks": Emulator.reset_after_chunks,
    "reset": Emulator.reset,
    "log_every": lambda emu, ms, *text: emu.log_every(ms, " ".join(str(t) for t in text) or None),
    "stall_rx": Emulator.stall_rx,
    "console": lambda emu, *text: emu.console(" ".join(str(t) for t in text) + "\r\n"),
    "version": lambda emu: emu.running_version(),
    "counters": lambda emu: " ".join("%s=%s" % kv for kv in sorted(emu.counters().items())),
}
