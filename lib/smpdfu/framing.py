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
        raw = max_packet + 4  # length field + packet + CRC
        n = (raw + 2) // 3 * 4 + 3 * ((raw + _LINE_RAW - 1) // _LINE_RAW)  # + markers and newlines
        self._buf = bytearray(n)  # indexed as a bytearray: faster than a memoryview in Python loops
        self._out = memoryview(self._buf)
        self._at = n - raw  # where the raw frame starts
        self.packet = self._out[n - raw + 2:n - 2]

    def encode(self, length=0, packet=None):
        """Frame the ``length``-byte packet held in :attr:`packet` (or copy
        ``packet`` in first: ``encode(packet=p)``).

        Returns a memoryview of the framed bytes, valid until the next call.
        """
        if packet is not None:
            length = len(packet)
        mv = self.packet
        if length > len(mv):
            raise FrameError("%d-byte packet > %d-byte buffer" % (length, len(mv)))
        if packet is not None:
            mv[:length] = packet
        buf = self._buf
        at = self._at
        n = length + 2  # the length field counts M and the CRC
        buf[at] = n >> 8
        buf[at + 1] = n & 0xFF
        crc = crc16_range(buf, at + 2, at + n, 0)
        buf[at + n] = crc >> 8
        buf[at + n + 1] = crc & 0xFF
        # the markers: the first line's, then the others'
        return self._out[:frame_lines(buf, at, n + 2, b"\x06\x09\x04\x14", _LINE_RAW)]


class FrameDecoder:
    """Incremental decoder of framed packets from a byte stream.

    :meth:`feed` takes whatever the UART returned; text between frames
    (console output, logs) is skipped. Complete packets, and a
    :class:`FrameError` for each broken frame (bad CRC, bad base64, bad
    length, a frame cut short by a new one), are queued in arrival order and
    taken with :meth:`next` (at most ``max_queue``: more are dropped, and the
    client's wait for them times out). A frame of one line (an upload's
    answer) is decoded straight from what :meth:`feed` got, without a copy;
    one of several lines is gathered in a buffer of the size its length field
    announces (at most ``max_packet`` + 4), made at its first line and freed
    at its last. A line split across reads waits in a 128-byte buffer.
    """

    def __init__(self, max_packet=2048, max_queue=8):
        self.max_packet = max_packet  # the largest packet taken (a plain attribute: set it to resize)
        self._line = memoryview(bytearray(_LINE_BUF))  # a line split across reads
        self._max_queue = max_queue
        self.errors = 0  # broken frames seen, for diagnostics
        self.reset()

    def reset(self):
        """Forget any partial line or frame (e.g. after the peer reset)."""
        # _n: bytes of a line split across reads, in _line; above _LINE_BUF,
        # the length so far of a line too long for it (console text, or a
        # spliced frame line), of which nothing is kept.
        self._n = 0
        self._pkt = None  # a frame of several lines: its buffer, of the announced size
        self._pkt_len = 0  # raw bytes of the frame decoded so far; 0 = not inside a frame
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

    def _error(self, what, n):
        # A broken frame, queued in order with the packets: ``what`` was
        # wrong (a word: one message format, no string per error), ``n`` the
        # byte count that tells (the frame's, or the line's).
        self.errors += 1
        self._pkt_len = 0
        self._pkt = None
        if len(self._queue) < self._max_queue:
            self._queue.append(FrameError("bad frame (%s, %d bytes)" % (what, n)))

    def feed(self, data):
        """Consume received bytes (bytes, bytearray or memoryview)."""
        if isinstance(data, memoryview):
            data = bytes(data)
        n = len(data)
        mv = memoryview(data)
        line = self._line
        start = 0
        while start < n:
            nl = data.find(b"\n", start)
            end = n if nl < 0 else nl
            k = self._n
            if k or nl < 0:
                # A line split across reads, gathered in _line from its last
                # frame-start marker on: console text without a newline (a
                # "uart:~$ " prompt) may come before a frame, and a marker may
                # straddle two reads.
                j = data.rfind(b"\x06\x09", start, end)
                if j >= 0:
                    k = 0
                    start = j
                elif 0 < k <= _LINE_BUF and line[k - 1] == _START0 and data[start] == _START1:
                    line[0] = _START0  # a marker split across two reads
                    k = 1
                m = end - start
                if k + m <= _LINE_BUF:
                    line[k:k + m] = mv[start:end]
                    k += m
                elif m and data[end - 1] == _START0:
                    line[0] = _START0  # maybe a marker's first half, after text too long to keep
                    k = 1
                else:
                    k += m  # too long to keep: only counted
                if nl < 0:
                    self._n = k
                    return
                self._n = 0
                buf = line
                s = 0
                j = 0 if k > 1 and line[0] == _START0 and line[1] == _START1 else -1
            else:
                # A whole line in this read (the usual case): decoded straight
                # from ``data``, the same way.
                buf = mv
                s = start
                k = end - start
                j = data.rfind(b"\x06\x09", start, end)
            start = nl + 1
            if j > s:
                k -= j - s
                s = j
            if k > _LINE_BUF:
                # Too long for a frame line: console text, or a frame line
                # that log text was spliced into, which breaks the frame.
                if self._pkt_len:
                    self._error("line>127", k)
                continue
            e = s + k
            if k and buf[e - 1] == 13:  # tolerate CRLF
                e -= 1
            if e - s < 2:
                continue
            p = self._pkt_len  # raw bytes of the open frame so far
            if j >= 0:
                if p:  # a start line cuts short the frame still open
                    self._error("cut short", p)
                    p = 0
            elif not (p and buf[s] == _CONT0 and buf[s + 1] == _CONT1):
                continue  # not a frame line
            # The line's base64 (after its marker) onto the frame: here, not
            # in a method of its own, as it runs for every answer.
            try:
                raw = a2b_base64(buf[s + 2:e])
            except ValueError:
                self._error("base64", e - s - 2)
                continue
            k = len(raw)
            if p:
                want = len(self._pkt)
            else:
                # The first line starts with the length field (it counts M + CRC).
                if k < 2:
                    self._error("too short", k)
                    continue
                want = ((raw[0] << 8) | raw[1]) + 2
                if want < 2 + 8 + 2 or want > self.max_packet + 4:
                    self._error("length", want - 2)  # accepted: 10 to max_packet + 2
                    continue
            if p + k > want:
                self._error("too long", p + k)
                continue
            if k < want:
                # A frame of several lines (not an upload's answer, which takes
                # one): gathered in a buffer of its announced size, made at its
                # first line, so no packet-sized buffer is held between frames.
                if not p:
                    self._pkt = bytearray(want)
                pkt = self._pkt
                pkt[p:p + k] = raw
                p += k
                if p < want:
                    self._pkt_len = p
                    continue
                raw = pkt
                self._pkt_len = 0
                self._pkt = None
            if crc16_range(raw, 2, want, 0):
                self._error("CRC", want - 4)  # the packet's size
            elif len(self._queue) < self._max_queue:
                self._queue.append(bytes(raw[2:want - 2]))
