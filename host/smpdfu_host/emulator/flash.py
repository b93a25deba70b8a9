"""The emulated nRF52840 flash: MCUboot slots in a file, with NVMC timing.

The file holds slot 0 then slot 1 (``slot_size`` bytes each), so the device
state (images and MCUboot trailers) survives emulator restarts. Programming
follows NOR rules (a write can only clear bits: new = old AND data), so writing
over unerased flash corrupts the image as on the real chip.

Timing (nRF52840 Product Specification, NVMC electrical spec): page erase
t_ERASEPAGE 85 ms per 4 KiB page, word write t_WRITE 41 us per 32-bit word.
``speed`` scales both (0 = instant). While a page erase runs, ``busy`` is
true: the emulator stalls the UART line decoder then (the CPU halts for the
whole 85 ms erase). A word write halts it for only 41 us, between which the
UART interrupt and Zephyr's system workqueue (priority -1, above the SMP
workqueue's 3) keep decoding lines, so writes do not stall reception.
"""

import os
import threading
import time

PAGE_SIZE = 4096
SLOT_SIZE = 0x76000  # nrf52840dk_nrf52840.dts slot0/slot1 partitions
ERASE_MS = 85.0
WRITE_US_PER_WORD = 41.0


class FlashFile:
    """Two MCUboot slots in a file, implementing the image-store interface of
    :mod:`smpdfu.server_image` (page_size, slot_size, read, write, erase, is_erased)."""

    def __init__(self, path, slot_size=SLOT_SIZE, page_size=PAGE_SIZE, speed=1.0,
                 erase_ms=ERASE_MS, write_us=WRITE_US_PER_WORD):
        if slot_size % page_size:
            raise ValueError("slot size must be a multiple of the page size")
        self.path = path
        self.page_size = page_size
        self._slot_size = slot_size
        self.speed = speed
        self.erase_ms = erase_ms
        self.write_us = write_us
        self.size = 2 * slot_size
        self.new = not os.path.exists(path) or os.path.getsize(path) != self.size
        if self.new:
            with open(path, "wb") as f:
                f.write(b"\xff" * self.size)
        self._f = open(path, "r+b")
        # In-memory copy, written through to the file (mmap is slow on some sandboxes).
        self.mm = bytearray(self._f.read())
        self._fd = self._f.fileno()
        self.busy = False
        self._debt = 0.0  # seconds of flash time not slept yet
        self._lock = threading.RLock()
        self.erased_pages = 0
        self.written_bytes = 0

    def close(self):
        self._f.close()

    def slot_size(self, slot):
        return self._slot_size

    def base(self, slot):
        if slot not in (0, 1):
            raise ValueError("no slot %r" % (slot,))
        return slot * self._slot_size

    def _spend(self, seconds, halts_cpu=False):
        # Sleep the emulated NVMC time; small amounts are batched so per-chunk
        # writes of a few ms keep their average rate.
        if self.speed <= 0:
            return
        self._debt += seconds * self.speed
        if self._debt >= 0.002:
            d = self._debt
            self._debt = 0.0
            self.busy = halts_cpu
            try:
                time.sleep(d)
            finally:
                self.busy = False

    def read(self, slot, off, buf):
        n = len(buf)
        if off < 0 or off + n > self._slot_size:
            raise ValueError("read outside slot %d: %d+%d" % (slot, off, n))
        a = self.base(slot) + off
        buf[:n] = self.mm[a:a + n]

    def slot_bytes(self, slot, off=0, n=None):
        """A copy of slot bytes (host convenience)."""
        if n is None:
            n = self._slot_size - off
        a = self.base(slot) + off
        return bytes(self.mm[a:a + n])

    def write(self, slot, off, data):
        n = len(data)
        if off < 0 or off + n > self._slot_size:
            raise ValueError("write outside slot %d: %d+%d" % (slot, off, n))
        a = self.base(slot) + off
        with self._lock:
            old = self.mm[a:a + n]
            new = bytes(data)
            if old != b"\xff" * n:
                new = (int.from_bytes(old, "little") & int.from_bytes(new, "little")).to_bytes(n, "little")
            self.mm[a:a + n] = new
            self._store(a, n)
            self.written_bytes += n
        words = (off + n + 3) // 4 - off // 4
        self._spend(words * self.write_us / 1e6)

    def erase(self, slot, off, size):
        page = self.page_size
        start = (off // page) * page
        end = ((off + size + page - 1) // page) * page
        if start < 0 or end > self._slot_size:
            raise ValueError("erase outside slot %d" % slot)
        b = self.base(slot)
        for p in range(start, end, page):
            with self._lock:
                self.mm[b + p:b + p + page] = b"\xff" * page
                self._store(b + p, page)
                self.erased_pages += 1
            self._spend(self.erase_ms / 1000.0, halts_cpu=True)

    def is_erased(self, slot):
        b = self.base(slot)
        return self.mm[b:b + self._slot_size].count(0xFF) == self._slot_size

    def raw_write(self, slot, off, data):
        """Overwrite bytes without NOR rules or timing (bootloader swap, tests)."""
        a = self.base(slot) + off
        with self._lock:
            self.mm[a:a + len(data)] = bytes(data)
            self._store(a, len(data))

    def raw_erase(self, slot, off=0, size=None):
        if size is None:
            size = self._slot_size - off
        self.raw_write(slot, off, b"\xff" * size)

    def spend_ms(self, ms):
        """Sleep ``ms`` of emulated flash time (scaled by ``speed``)."""
        self._spend(ms / 1000.0)
        if self._debt and self.speed > 0:
            d = self._debt
            self._debt = 0.0
            time.sleep(d)

    def flush(self):
        os.fsync(self._fd)

    def _store(self, a, n):
        os.pwrite(self._fd, self.mm[a:a + n], a)
