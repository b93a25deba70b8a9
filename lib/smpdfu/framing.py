"""SMP serial framing ("SMP over console", Zephyr serial_util.c).

A packet M (SMP header + CBOR body) travels as
``base64(BE16(len(M) + 2) + M + BE16(CRC16(M)))`` cut into lines of at most
127 bytes: the first starts with 0x06 0x09, each continuation with 0x04 0x14,
and each ends with a newline. Each line carries 124 base64 characters (93 raw
bytes) at most, so every line decodes on its own as Zephyr's receiver does.
"""

from .compat import a2b_base64, const, crc16_range, frame_lines
from .errors import FrameError

_MAX_LINE = const(127)  # bytes per line, markers and newline included
_LINE_RAW = const(93)  # raw bytes per full line (124 base64 characters)
_LINE_BUF = const(128)  # the line buffer: _MAX_LINE and a CR
_START0 = const(0x06)
_START1 = const(0x09)
_CONT0 = const(0x04)
_CONT1 = const(0x14)

_START = b"\x06\x09"
_MARKS = b"\x06\x09\x04\x14"  # first line's marker, then a continuation line's


class FrameEncoder:
    """Frames packets of up to ``max_packet`` bytes in one preallocated buffer.

    Build the packet straight into :attr:`packet` (a memoryview over the
    header + CBOR area), then call :meth:`encode` with its length: the CRC is
    computed in place and the lines are base64-encoded into the same buffer
    (native code where the firmware has an emitter, see :mod:`smpdfu.compat`).
    The raw frame sits at the buffer's tail, where the base64 written from its
    start overtakes it only at its last byte (base64 is longer than what it
    encodes), so one buffer of the framed size (``max_packet`` 2048: 2.8 KB)
    does for both. :attr:`packet` is overwritten by each :meth:`encode`.
    """

    def __init__(self, max_packet):
        self.max_packet = max_packet
        raw = max_packet + 4  # length field + packet + CRC
        n = (raw + 2) // 3 * 4 + 3 * ((raw + _LINE_RAW - 1) // _LINE_RAW)  # + markers and newlines
        self._out = memoryview(bytearray(n))
        self._raw = self._out[n - raw:]
        self.packet = self._raw[2:2 + max_packet]

    def encode(self, length=0, packet=None):
        """Frame the ``length``-byte packet held in :attr:`packet` (or copy
        ``packet`` in first: ``encode(packet=p)``).

        Returns a memoryview of the framed bytes, valid until the next call.
        """
        if packet is not None:
            length = len(packet)
        if length > self.max_packet:
            raise FrameError("packet of %d bytes > %d-byte frame buffer" % (length, self.max_packet))
        raw = self._raw
        if packet is not None:
            raw[2:2 + length] = packet
        n = length + 2  # the length field counts M and the CRC
        raw[0] = n >> 8
        raw[1] = n & 0xFF
        crc = crc16_range(raw, 2, n, 0)
        raw[n] = crc >> 8
        raw[n + 1] = crc & 0xFF
        return self._out[:frame_lines(raw, n + 2, self._out, _MARKS, _LINE_RAW)]


class FrameDecoder:
    """Incremental decoder of framed packets from a byte stream.

    :meth:`feed` takes whatever the UART returned; text between frames
    (console output, logs) is skipped. Complete packets, and a
    :class:`FrameError` for each broken frame (bad CRC, bad base64, bad
    length, a frame cut short by a new one), are queued in arrival order and
    taken with :meth:`next`.
    """

    def __init__(self, max_packet=2048, max_queue=8):
        self.max_packet = max_packet  # the largest packet taken (a plain attribute: set it to resize)
        self._line = bytearray(_LINE_BUF)
        self._line_mv = memoryview(self._line)
        self._max_queue = max_queue
        self.errors = 0  # broken frames seen, for diagnostics
        self.dropped = 0  # packets or errors dropped because the queue was full
        self.reset()

    def reset(self):
        """Forget any partial line or frame (e.g. after the peer reset)."""
        self._line_len = 0
        self._mark = -1  # index in _line of its last frame-start marker, or -1
        self._line_overflow = False
        self._pkt = None  # a frame of several lines: its buffer, made at its first line
        self._pkt_len = 0  # raw bytes decoded so far; 0 = not inside a frame
        self._want = 0  # raw bytes the frame announced (length field + 2)
        self._queue = []

    def next(self):
        """The next complete packet (``bytes``: header + CBOR), or None.

        Raises the queued :class:`FrameError` when the next thing in the
        stream was a broken frame.
        """
        if not self._queue:
            return None
        item = self._queue.pop(0)
        if isinstance(item, FrameError):
            raise item
        return item

    def _error(self, msg):
        # A broken frame: queued in order with the packets.
        self.errors += 1
        self._pkt_len = 0
        self._pkt = None
        if len(self._queue) < self._max_queue:
            self._queue.append(FrameError(msg))
        else:
            self.dropped += 1

    def feed(self, data):
        """Consume received bytes (bytes, bytearray or memoryview)."""
        if isinstance(data, memoryview):
            data = bytes(data)
        n = len(data)
        start = 0
        line = self._line
        mv = None
        while start < n:
            nl = data.find(b"\n", start)
            if 2 <= nl - start <= _LINE_BUF and not self._line_len and not self._line_overflow:
                # A whole line in this read (the usual case): a frame's lines
                # are decoded straight from ``data``, not copied into the line
                # buffer first. What _end_line does with the same line.
                c0 = data[start]
                c1 = data[start + 1]
                start_line = c0 == _START0 and c1 == _START1 and data.find(_START, start + 2, nl) < 0
                if start_line or c0 == _CONT0 and c1 == _CONT1:
                    if mv is None:
                        mv = memoryview(data)
                    e = nl - 1 if data[nl - 1] == 13 else nl  # tolerate CRLF
                    if start_line:
                        self._append(mv[start + 2:e], True)
                    elif self._pkt_len:
                        self._append(mv[start + 2:e])
                    start = nl + 1
                    continue
            end = n if nl < 0 else nl
            k = end - start
            if k and (self._line_len < 2 or self._line_overflow or line[0] != _START0 and line[0] != _CONT0):
                start = self._skip_text(data, start, end)
                k = end - start
            if k and not self._line_overflow:
                if self._line_len + k > len(line):
                    self._line_overflow = True
                else:
                    # Where the line's last frame-start marker is, found in C
                    # on the received bytes (a marker may straddle two feeds).
                    L = self._line_len
                    j = data.rfind(_START, start, end)
                    if j >= 0:
                        self._mark = L + j - start
                    elif L and line[L - 1] == _START0 and data[start] == _START1:
                        self._mark = L - 1
                    if start == 0 and L + n <= len(line):
                        # All of data fits: copy it whole (what follows the
                        # line is not counted), no slice object at all.
                        line[L:L + n] = data
                    else:  # a memoryview slice is a small fixed-size object, a bytes slice a copy
                        if mv is None:
                            mv = memoryview(data)
                        line[L:L + k] = mv[start:end]
                    self._line_len = L + k
            if nl < 0:
                return
            self._end_line()
            start = nl + 1

    def _skip_text(self, data, start, end):
        # Console text without a newline (a "uart:~$ " prompt) may precede a
        # frame start on the current line. Keep the line from the marker on:
        # otherwise a full first frame line overflows and the frame is lost.
        # Returns where to go on copying ``data`` from.
        n = self._line_len
        line = self._line
        if n == 0 and data[start] == _CONT0:
            return start  # a continuation line: nothing to skip (no search)
        j = data.find(_START, start, end)
        if j >= 0:
            if j > start or n or self._line_overflow:
                self._line_len = 0
                self._line_overflow = False
                self._mark = -1
            return j
        if n and not self._line_overflow and line[n - 1] == _START0 and data[start] == _START1:
            line[0] = _START0  # the marker was split across two reads
            self._line_len = 1
            self._line_overflow = False
            self._mark = -1
        elif data[end - 1] == _START0 and (self._line_overflow or n + end - start > len(line)):
            line[0] = _START0  # maybe a marker's first half, after text too long to keep
            self._line_len = 1
            self._line_overflow = False
            self._mark = -1
            return end
        return start

    def _end_line(self):
        n = self._line_len
        overflow = self._line_overflow
        mark = self._mark
        self._mark = -1
        self._line_len = 0
        self._line_overflow = False
        line = self._line
        if n and line[n - 1] == 13:  # tolerate CRLF
            n -= 1
        if overflow:
            # Too long for a frame line: console text, or a frame line that
            # log text was spliced into. Inside a frame that breaks the frame.
            if self._pkt_len:
                self._error("frame line > %d bytes" % _MAX_LINE)
            return
        if n >= 2 and line[0] == _CONT0 and line[1] == _CONT1:
            if self._pkt_len:
                self._append(self._line_mv[2:n])
            return
        # A frame may start after console text that had no newline: take
        # the last start marker (base64 never contains one).
        i = mark
        if i < 0 or i + 2 > n:
            return
        self._append(self._line_mv[i + 2:n], True)

    def _append(self, b64, first=False):
        # One line's base64 (after its marker) onto the frame; ``first``: a
        # start line, which cuts short a frame still open.
        p = self._pkt_len
        if first and p:
            self._error("frame cut short at %d of %d bytes" % (p, self._want))
            p = 0
        try:
            raw = a2b_base64(b64)
        except ValueError:
            self._error("bad base64 in frame line")
            return
        k = len(raw)
        want = self._want
        if p == 0:
            # The first line starts with the length field (it counts M + CRC).
            if k < 2:
                self._error("frame too short")
                return
            want = ((raw[0] << 8) | raw[1]) + 2
            if want < 2 + 8 + 2 or want > self.max_packet + 4:
                self._error("bad frame length %d (10 to %d)" % (want - 2, self.max_packet + 2))
                return
            self._want = want
        if p + k > want:
            self._error("frame longer than its length %d" % (want - 2))
            return
        buf = raw
        if k < want:
            # A frame of several lines (not an upload's answer, which takes
            # one): gathered in a buffer of its announced size, made at its
            # first line, so no packet-sized buffer is held between frames.
            if not p:
                self._pkt = bytearray(want)
            buf = self._pkt
            buf[p:p + k] = raw
            p += k
            if p < want:
                self._pkt_len = p
                return
        self._pkt_len = 0
        self._pkt = None
        if crc16_range(buf, 2, want, 0):
            self._error("bad CRC in frame of %d bytes" % (want - 4))
        elif len(self._queue) < self._max_queue:
            self._queue.append(bytes(buf[2:want - 2]))
        else:
            self.dropped += 1
