"""SMP over a serial line ("SMP over console" framing) on any UART adapter."""

from .compat import const, sleep_ms
from .framing import FrameDecoder, FrameEncoder
from .uart import UART

_FRAME_OVERHEAD = const(4)  # the frame's length and CRC share the server's netbuf
_MIN_PACKET = const(384)  # Zephyr's default netbuf: what any SMP server takes and sends


class SerialTransport:
    """Sends and receives SMP packets over a UART.

    Build a request's header + CBOR body straight into :attr:`packet` (a
    memoryview of ``max_packet`` bytes), then :meth:`send` its length: the
    framing works in preallocated buffers, so the per-chunk path allocates
    little. :meth:`send` overwrites :attr:`packet` (the frame is encoded in
    place). :meth:`recv` never blocks.

    Sizing (the board's app chooses): ``max_packet`` is the largest request
    this side builds and the largest response it takes; the link holds one
    buffer of its framed size (~1.37 x ``max_packet``: 2.8 KB at 2048), cut to
    the server's buffers by :meth:`fit`, a 128-byte line buffer, and a frame
    of several lines (never an upload's answer) gets a buffer of its own size
    while it arrives. ``rx_queue`` is how many received packets wait for
    :meth:`recv` at most. ``line_gap_ms`` pauses between the lines of a frame
    (as Go newtmgr does) for receivers with few line buffers; 0 (default)
    sends back to back.
    """

    def __init__(self, uart, max_packet=2048, line_gap_ms=0, rx_queue=8):
        self.uart = uart if hasattr(uart, "read_available") else UART(uart)
        self.max_packet = max_packet
        self._cap = max_packet
        self.line_gap_ms = line_gap_ms
        self._enc = FrameEncoder(max_packet)
        self._dec = FrameDecoder(max_packet, rx_queue)
        self.packet = self._enc.packet
        self._wait = getattr(self.uart, "wait_readable", None)

    def request_limit(self, buf_size):
        """The largest SMP packet (header + body) a server with ``buf_size``-byte buffers accepts.

        Over serial the frame's 2-byte length and 2-byte CRC are decoded into
        the same buffer (``CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE``) as the packet,
        so 4 bytes go to the framing; never more than :attr:`max_packet`.
        """
        n = buf_size - _FRAME_OVERHEAD
        return n if n < self.max_packet else self.max_packet

    def fit(self, buf_size):
        """Size the frame buffers to a server whose buffers hold ``buf_size``
        bytes (OS params; :meth:`SMPClient.params` calls this): neither its
        requests nor its responses are larger, so a 384-byte server costs a
        ~0.5 KB frame buffer instead of 2.8 KB at ``max_packet`` 2048.
        Never beyond the ``max_packet`` given at construction; replaces :attr:`packet`.
        """
        n = buf_size if buf_size < self._cap else self._cap
        if n < _MIN_PACKET:
            n = _MIN_PACKET if _MIN_PACKET < self._cap else self._cap
        if n == self.max_packet:
            return
        self.packet = self._enc = None  # the old buffers can go before the new ones are made
        self._enc = FrameEncoder(n)
        self.packet = self._enc.packet
        self._dec.max_packet = n
        self.max_packet = n

    def send(self, length):
        """Frame the first ``length`` bytes of :attr:`packet` and write them."""
        out = self._enc.encode(length)
        if not self.line_gap_ms:
            self.uart.write(out)
            return
        start = 0
        n = len(out)
        while start < n:
            end = start
            while out[end] != 10:  # each line ends with "\n"
                end += 1
            end += 1
            if start:
                sleep_ms(self.line_gap_ms)
            self.uart.write(out[start:end])
            start = end

    def recv(self):
        """The next received packet (``bytes``, header + CBOR) or None.

        Reads what the UART has, without waiting. Raises
        :class:`~smpdfu.errors.FrameError` for a broken frame.
        """
        dec = self._dec
        pkt = dec.next()
        # Keep reading while data flows (a UART may hand a frame over in
        # small pieces), but give control back after a while.
        for _ in range(32):
            if pkt is not None:
                return pkt
            data = self.uart.read_available()
            if not data:
                return None
            dec.feed(data)
            pkt = dec.next()
        return pkt

    def wait(self, ms):
        """Block up to ``ms`` milliseconds for received data.

        Uses the UART's own ``wait_readable`` where it has one (no busy
        polling on CPython); elsewhere sleeps a millisecond.
        """
        if self._wait is not None:
            self._wait(ms)
        else:
            sleep_ms(1)

    def reset(self):
        """Drop anything received so far (partial frames, queued packets, garbage).

        Also ends the device's partial input line with a newline: one stray
        byte there (noise, a killed client) would otherwise swallow the next
        request, which Zephyr drops as a line that does not start a frame.
        """
        self.uart.write(b"\n")
        for _ in range(64):
            if not self.uart.read_available():
                break
        self._dec.reset()

    def close(self):
        """Close the UART."""
        self.uart.close()
