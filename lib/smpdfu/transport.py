"""SMP over a serial line ("SMP over console" framing) on any UART adapter."""

from .compat import const, sleep_ms
from .framing import FrameDecoder, FrameEncoder

_FRAME_OVERHEAD = const(4)  # the frame's length and CRC share the server's netbuf
_MIN_PACKET = const(384)  # Zephyr's default netbuf: what any SMP server takes and sends


class SerialTransport:
    """Sends and receives SMP packets over a UART.

    Build a request's header + CBOR body straight into :attr:`packet`, then
    :meth:`send` its length: the framing works in preallocated buffers, so
    the per-chunk path allocates little. :meth:`send` overwrites
    :attr:`packet` (the frame is encoded in place). :meth:`recv` never blocks.

    ``uart``: anything with ``read_available`` (see :mod:`smpdfu.uart`), else
    a ``machine.UART`` or ``busio.UART``, wrapped in :class:`smpdfu.uart.UART`.

    Sizing (the board's app chooses): ``max_packet`` is the largest request
    this side builds and the largest response it takes. :attr:`packet` holds
    384 bytes (what any SMP server takes; less if ``max_packet`` is less)
    until :meth:`fit` (or :meth:`request_limit`) learns the server's buffer
    size: then that, at most ``max_packet``, so the link holds one frame
    buffer of the size the server needs (~1.37 x: 0.5 KB for 384 bytes,
    2.8 KB for 2048), made again only when that size changes. Besides it a
    128-byte line buffer, and a frame of several lines (never an upload's
    answer) gets a buffer of its own size while it arrives. ``rx_queue`` is
    how many received packets wait for :meth:`recv` at most.
    ``line_gap_ms`` pauses between the lines of a frame (as Go newtmgr does)
    for receivers with few line buffers; 0 (default) sends back to back.
    """

    def __init__(self, uart, max_packet=2048, line_gap_ms=0, rx_queue=8):
        # (try, not hasattr: a name of more than 10 characters as a str would be a heap object)
        try:
            uart.read_available
        except AttributeError:  # a machine.UART or busio.UART: the adapter (loaded only then)
            from .uart import UART

            uart = UART(uart)
        self.uart = uart
        try:
            self.wait = uart.wait_readable  # the UART's own wait, instead of polling (the method below)
        except AttributeError:
            pass
        self.max_packet = max_packet
        self.line_gap_ms = line_gap_ms
        self._dec = FrameDecoder(max_packet, rx_queue)
        self._enc = FrameEncoder(min(max_packet, _MIN_PACKET))
        self.packet = self._enc.packet

    def fit(self, buf_size):
        """Size :attr:`packet` to a server whose buffers hold ``buf_size``
        bytes (``CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE``, from OS params:
        :meth:`SMPClient.params` calls this), and return the largest SMP
        packet (header + body) it accepts.

        Neither its requests nor its responses are larger than ``buf_size``:
        the frame buffer is made for that (at least 384 bytes, at most
        :attr:`max_packet`), if it is not that size already; so a 384-byte
        server costs ~0.5 KB, not 2.8 KB at ``max_packet`` 2048. The largest
        request is ``buf_size`` - 4, as the frame's length and CRC are
        decoded into the same buffer; never more than :attr:`max_packet`.
        """
        cap = self.max_packet
        n = min(max(buf_size, _MIN_PACKET), cap)
        if n != len(self.packet):
            self.packet = self._enc = None  # the old buffer can go before the new one is made
            self._enc = FrameEncoder(n)
            self.packet = self._enc.packet
        self._dec.max_packet = n
        return min(buf_size - _FRAME_OVERHEAD, cap)

    # The upload engine asks the largest request before it builds any: the
    # frame buffer is sized then too (an upload given ``buf_size``, without
    # asking the server's params, sends requests of that size).
    request_limit = fit

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

        A UART with its own ``wait_readable`` (no busy polling on CPython)
        replaces this; elsewhere it sleeps a millisecond.
        """
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
