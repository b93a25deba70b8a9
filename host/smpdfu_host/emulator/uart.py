"""Zephyr's serial SMP transport, emulated byte for byte (logic only, no I/O).

- :func:`zephyr_frame`: the lines ``mcumgr_serial_tx_pkt`` (serial_util.c)
  sends for a response. Base64 is produced in 3-byte groups, each padded on
  its own; a frame line takes at most 93 raw bytes, the first one counting the
  2-byte length (``max_input`` is a local of ``mcumgr_serial_tx_frame``, set
  anew for every line). The CRC is never split across
  lines: when it would not fit whole, one data byte is held back and sent
  with the CRC in a further line.
- :class:`LineBuffers`: ``uart_mcumgr.c`` receive side: a slab of
  ``count`` buffers of ``size`` bytes; a line is dropped when no buffer is free
  at its first byte or when it does not fit (the newline is stored too).
- :class:`FrameAssembler`: ``mcumgr_serial_process_frag``: a line must start
  with 06 09 (new packet) or 04 14 (continuation); base64 is decoded into a
  net_buf of ``buf_size`` bytes (length field + packet + CRC must fit, else the
  packet is dropped silently); bad base64, a bad length or a bad CRC drop the
  packet silently.
- :class:`NetBufPool`: the ``buf_count`` SMP net_bufs shared by the receive
  context, queued requests and responses.
"""

import binascii
import threading

from smpdfu.crc16 import crc16

MAX_FRAME = 127  # MCUMGR_SERIAL_MAX_FRAME
HDR_PKT = b"\x06\x09"
HDR_FRAG = b"\x04\x14"


def _b64(chunk):
    return binascii.b2a_base64(bytes(chunk), newline=False)


def zephyr_frame(data):
    """The framed lines (one bytes object) Zephyr sends for packet ``data``."""
    n = len(data)
    crc = crc16(data)
    out = []
    src = 0
    first = True
    last = False
    while src < n:
        max_input = ((MAX_FRAME - 3) >> 2) * 3
        out.append(HDR_PKT if first else HDR_FRAG)
        if first:
            out.append(_b64(bytes(((n + 2) >> 8, (n + 2) & 0xFF, data[0]))))
            src = 1
            max_input -= 3
        to_process = min(max_input, n - src)
        reminder = max_input - (n - src)
        if reminder == 0 or reminder == 1:
            to_process -= 1
            last = False
        elif reminder >= 2:
            last = True
        while to_process >= 3:
            out.append(_b64(data[src:src + 3]))
            src += 3
            to_process -= 3
        if last:
            left = n - src
            hi, lo = crc >> 8, crc & 0xFF
            if left == 0:
                out.append(_b64(bytes((hi, lo))))
            elif left == 1:
                out.append(_b64(bytes((data[src], hi, lo))))
                src += 1
            elif left == 2:
                out.append(_b64(bytes((data[src], data[src + 1], hi))))
                out.append(_b64(bytes((lo,))))
                src += 2
        out.append(b"\n")
        first = False
    return b"".join(out)


def split_lines(framed):
    """Framed bytes -> list of lines (each with its newline)."""
    return [ln + b"\n" for ln in framed.split(b"\n")[:-1]]


class LineBuffers:
    """The receive line buffers of uart_mcumgr.c (CONFIG_UART_MCUMGR_RX_BUF_COUNT/SIZE).

    Feed bytes with :meth:`feed`; completed lines come back and hold a buffer
    until :meth:`release`. Counters: ``dropped_no_buffer``, ``dropped_too_long``.
    """

    def __init__(self, count=2, size=128):
        self.count = count
        self.size = size
        self.in_use = 0  # buffers allocated (being filled or waiting for the decoder)
        self.cur = None  # bytearray being filled, or None
        self.ignoring = False
        self.dropped_no_buffer = 0
        self.dropped_too_long = 0

    def reset(self):
        self.in_use = 0
        self.cur = None
        self.ignoring = False

    def release(self):
        """The decoder is done with one completed line."""
        if self.in_use > 0:
            self.in_use -= 1

    def feed(self, data):
        """Process received bytes; return the list of completed lines."""
        done = []
        pos = 0
        n = len(data)
        while pos < n:
            nl = data.find(b"\n", pos)
            end = n if nl < 0 else nl + 1
            seg = data[pos:end]
            pos = end
            if not self.ignoring and self.cur is None:
                if self.in_use >= self.count:
                    self.ignoring = True  # no buffer: drop this line
                    self.dropped_no_buffer += 1
                else:
                    self.in_use += 1
                    self.cur = bytearray()
            if not self.ignoring:
                room = self.size - len(self.cur)
                if len(seg) > room:
                    self.cur = None  # too long: drop, free the buffer
                    self.in_use -= 1
                    self.ignoring = True
                    self.dropped_too_long += 1
                else:
                    self.cur += seg
            if nl >= 0:
                if self.ignoring:
                    self.ignoring = False
                else:
                    done.append(bytes(self.cur))
                    self.cur = None
        return done


class NetBufPool:
    """CONFIG_MCUMGR_TRANSPORT_NETBUF_COUNT buffers; ``alloc()`` -> bool."""

    def __init__(self, count):
        self.count = count
        self.used = 0
        self.failures = 0
        self._lock = threading.Lock()

    def alloc(self):
        with self._lock:
            if self.used >= self.count:
                self.failures += 1
                return False
            self.used += 1
            return True

    def free(self, n=1):
        with self._lock:
            self.used = max(0, self.used - n)

    def reset(self):
        with self._lock:
            self.used = 0


def _b64_decode(s):
    # Zephyr's base64_decode (mbedTLS-derived) skips line ends; padding only at the end.
    s = bytes(s).rstrip(b"\r\n")
    if len(s) % 4:
        raise ValueError("length")
    return binascii.a2b_base64(s, strict_mode=True)


class FrameAssembler:
    """mcumgr_serial_process_frag over lines; ``process(line)`` -> packet bytes or None.

    Counters: ``bad_frames`` (bad base64/length/CRC), ``too_big`` (did not fit
    ``buf_size``), ``no_buffer`` (the pool was empty at a frame start).
    """

    def __init__(self, buf_size, pool):
        self.buf_size = buf_size
        self.pool = pool
        self.nb = None  # bytearray when holding a net_buf
        self.pkt_len = 0
        self.bad_frames = 0
        self.too_big = 0
        self.no_buffer = 0

    def reset(self):
        self.nb = None
        self.pkt_len = 0

    def _free(self):
        if self.nb is not None:
            self.nb = None
            self.pool.free()

    def process(self, line):
        if self.nb is None:
            if not self.pool.alloc():
                self.no_buffer += 1
                return None
            self.nb = bytearray()
        if len(line) < 2:
            return None
        op = line[:2]
        if op == HDR_PKT:
            del self.nb[:]
            self.pkt_len = 0
        elif op == HDR_FRAG:
            if not self.nb:
                self._free()
                return None
        else:
            return None  # console text: ignored, the buffer is kept
        try:
            raw = _b64_decode(line[2:])
        except (ValueError, binascii.Error):
            self.bad_frames += 1
            self._free()
            return None
        if len(self.nb) + len(raw) + (2 if op == HDR_FRAG else 0) > self.buf_size:
            self.too_big += 1  # base64_decode: -ENOBUFS (no tailroom)
            self._free()
            return None
        if op == HDR_PKT:
            if len(raw) < 2:
                self.bad_frames += 1
                self._free()
                return None
            self.pkt_len = (raw[0] << 8) | raw[1]
            raw = raw[2:]
            if self.pkt_len < 2:
                self.bad_frames += 1
                self._free()
                return None
        self.nb += raw
        if len(self.nb) < self.pkt_len:
            return None
        if len(self.nb) > self.pkt_len or crc16(self.nb) != 0:
            self.bad_frames += 1
            self._free()
            return None
        pkt = bytes(self.nb[:-2])
        self.nb = None  # handed over with its net_buf
        return pkt
