"""SMP serial framing ("SMP over console", Zephyr serial_util.c).

A packet M (SMP header + CBOR body) travels as
``base64(BE16(len(M) + 2) + M + BE16(CRC16(M)))`` cut into lines of at most
127 bytes: the first starts with 0x06 0x09, each continuation with 0x04 0x14,
and each ends with a newline. Each line carries 124 base64 characters (93 raw
bytes) at most, so every line decodes on its own as Zephyr's receiver does.
"""

from .compat import a2b_base64, const, crc16_range, frame_lines
from .errors import FrameError

MAX_LINE = const(127)  # bytes per line, markers and newline included
_LINE_B64 = const(124)  # base64 characters per full line
_LINE_RAW = const(93)  # raw bytes per full line
_LINE_BUF = const(128)  # the line buffer: MAX_LINE and a CR
_START0 = const(0x06)
_START1 = const(0x09)
_CONT0 = const(0x04)
_CONT1 = const(0x14)

_START = b"\x06\x09"
_MARKS = bytes((_START0, _START1, _CONT0, _CONT1))  # first line's marker, then a continuation line's


def framed_size(packet_len):
    """Bytes on the wire for a packet (header + CBOR) of ``packet_len`` bytes."""
    raw = packet_len + 4
    lines = (raw + _LINE_RAW - 1) // _LINE_RAW
    return ((raw + 2) // 3) * 4 + 3 * lines


class FrameEncoder:
    """Frames packets of up to ``max_packet`` bytes, allocation-light.

    Build the packet straight into :attr:`packet` (a memoryview over the
    header + CBOR area of a preallocated buffer), then call :meth:`encode`
    with its length: the CRC is computed in place and the framed lines are
    base64-encoded straight into a preallocated output buffer (native code
    where the firmware has an emitter, see :mod:`smpdfu.compat`).
    """

    def __init__(self, max_packet):
        self.max_packet = max_packet
        self._raw = bytearray(max_packet + 4)
        self._raw_mv = memoryview(self._raw)
        self.packet = self._raw_mv[2:2 + max_packet]
        self._out = bytearray(framed_size(max_packet))
        self._out_mv = memoryview(self._out)

    def encode(self, length):
        """Frame the ``length``-byte packet held in :attr:`packet`.

        Returns a memoryview of the framed bytes, valid until the next call.
        """
        if length > self.max_packet:
            raise FrameError("packet of %d bytes exceeds the %d-byte frame buffer" % (length, self.max_packet))
        raw = self._raw
        n = length + 2  # the length field counts M and the CRC
        raw[0] = n >> 8
        raw[1] = n & 0xFF
        crc = crc16_range(raw, 2, 2 + length, 0)
        raw[2 + length] = crc >> 8
        raw[3 + length] = crc & 0xFF
        o = frame_lines(raw, length + 4, self._out, _MARKS, _LINE_RAW)
        return self._out_mv[:o]

    def encode_packet(self, packet):
        """Copy ``packet`` (header + CBOR) in and frame it (convenience)."""
        n = len(packet)
        if n > self.max_packet:
            raise FrameError("packet of %d bytes exceeds the %d-byte frame buffer" % (n, self.max_packet))
        self.packet[:n] = packet
        return self.encode(n)


class FrameDecoder:
    """Incremental decoder of framed packets from a byte stream.

    :meth:`feed` takes whatever the UART returned; text between frames
    (console output, logs) is skipped. Complete packets, and a
    :class:`FrameError` for each broken frame (bad CRC, bad base64, bad
    length, a frame cut short by a new one), are queued in arrival order and
    taken with :meth:`next`.
    """

    def __init__(self, max_packet=2048, max_queue=8):
        self._line = bytearray(_LINE_BUF)
        self._line_mv = memoryview(self._line)
        self._line_len = 0
        self._line_overflow = False
        self._mark = -1  # index in _line of its last frame-start marker, or -1
        self._pkt = self._pkt_mv = None
        self.resize(max_packet)
        self._pkt_len = 0  # raw bytes decoded so far; 0 = not inside a frame
        self._want = 0  # raw bytes the frame announced (length field + 2)
        self._queue = []
        self._max_queue = max_queue
        self.errors = 0  # broken frames seen, for diagnostics
        self.dropped = 0  # packets dropped because the queue was full

    def resize(self, max_packet):
        """Take packets of up to ``max_packet`` bytes from now on (a frame
        being decoded keeps the buffer it started in)."""
        self.max_packet = max_packet
        if self._pkt is None or not self._pkt_len:
            self._pkt = self._pkt_mv = None  # the old buffer can go before the new one is made
            self._pkt = bytearray(max_packet + 4)
            self._pkt_mv = memoryview(self._pkt)

    def reset(self):
        """Forget any partial line or frame (e.g. after the peer reset)."""
        self._line_len = 0
        self._mark = -1
        self._line_overflow = False
        self._pkt_len = 0
        self._queue = []

    def pending(self):
        """Number of packets or errors waiting in the queue."""
        return len(self._queue)

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

    def _put(self, item):
        if isinstance(item, FrameError):
            self.errors += 1
        if len(self._queue) >= self._max_queue:
            self.dropped += 1
            return
        self._queue.append(item)

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
                        if self._pkt_len:
                            self._new_frame()
                        self._append(mv[start + 2:e])  # it sets _want: p is 0
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
                self._pkt_len = 0
                self._put(FrameError("frame line longer than %d bytes" % MAX_LINE))
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
        self._new_frame()
        self._append(self._line_mv[i + 2:n])

    def _new_frame(self):
        # A start line: a frame still open is cut short.
        if self._pkt_len:
            self._put(FrameError("frame cut short: %d of %d bytes, then a new frame" % (self._pkt_len, self._want)))
        self._pkt_len = 0
        self._want = 0

    def _append(self, b64):
        # One line's base64 (after its marker) onto the frame.
        try:
            raw = a2b_base64(b64)
        except ValueError:
            self._pkt_len = 0
            self._put(FrameError("bad base64 in frame line"))
            return
        k = len(raw)
        p = self._pkt_len
        if p == 0:
            # The first line starts with the length field (it counts M + CRC).
            if k < 2:
                self._put(FrameError("frame too short for its length field"))
                return
            want = ((raw[0] << 8) | raw[1]) + 2
            if want < 2 + 8 + 2 or want > len(self._pkt):
                self._put(FrameError("bad frame length %d (accepted: 10 to %d)" % (want - 2, self.max_packet + 2)))
                return
            self._want = want
        if p + k > self._want:
            self._pkt_len = 0
            self._put(FrameError("frame holds more than the %d bytes its length field says" % (self._want - 2)))
            return
        self._pkt[p:p + k] = raw
        p += k
        self._pkt_len = p
        if p >= self._want:
            self._pkt_len = 0
            if crc16_range(self._pkt, 2, p, 0) != 0:
                self._put(FrameError("bad CRC in frame of %d bytes" % (p - 4)))
                return
            q = self._queue  # _put, inline for the usual packet
            if len(q) < self._max_queue:
                q.append(bytes(self._pkt_mv[2:p - 2]))
            else:
                self.dropped += 1
