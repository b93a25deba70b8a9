"""SMP over Bluetooth LE (Zephyr's smp_bt) on any BLE adapter.

The transport of docs/architecture.md over a *BLE adapter* (one per
platform: ``ble_mp`` for MicroPython's ``bluetooth``, ``ble_cp`` for
CircuitPython, ``smpdfu_host.ble_bumble`` for a PC), which offers::

    adapter.connect(target, timeout_ms)  # scan (name, "AA:BB:.." or None: the SMP
                                         # service), connect, largest MTU, subscribe
    adapter.mtu                          # ATT MTU in force
    adapter.write(buf) -> bool           # one Write Command (len <= mtu - 3); False: queue full
    adapter.read_notification()          # oldest queued notification (whole) or None
    adapter.wait(ms)                     # block up to ms for a notification or a state change
    adapter.connected
    adapter.disconnect()

Requests are written without response: one write per SMP packet, or split
at MTU - 3 when the server reassembles (``CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY``).
Responses come as notifications of MTU - 3 bytes and are put together by
the length in the SMP header.
"""

from .compat import const, sleep_ms, ticks_diff, ticks_ms
from .errors import FrameError, LinkError, ProtocolError
from .header import HEADER_SIZE

SMP_SERVICE_UUID = "8D53DC1D-1DB7-4CD3-868B-8A527460AA84"
SMP_CHAR_UUID = "DA2E7828-FBCE-4E01-AE9E-261174997C48"

_ATT_OVERHEAD = const(3)  # opcode + handle of a Write Command or a notification
_ZEPHYR_BUF_SIZE = const(384)  # CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE default
_WRITE_STALL_MS = const(2000)  # a controller queue that stays full this long: the link is dead
_STALE_MS = const(1000)  # a response whose next notification is this late lost one
_DROP_WAIT_MS = const(2000)  # how long a reset device takes to drop the link


class NotFound(LinkError):
    """No device matching the name, address or service was found in time.

    Here, not in :mod:`smpdfu.errors`: only a BLE link raises it, and a class
    costs heap on every board."""


def is_address(target):
    """True when ``target`` looks like a Bluetooth address ``"AA:BB:CC:DD:EE:FF"``."""
    if not isinstance(target, str) or len(target) != 17:
        return False
    for i, ch in enumerate(target):
        if i % 3 == 2:
            if ch != ":":
                return False
        elif ch not in "0123456789abcdefABCDEF":
            return False
    return True


class BLETransport:
    """Sends and receives SMP packets over a BLE adapter (see the module docs).

    - ``target``: the device's name, its address, or None for the first one
      advertising the SMP service;
    - ``reassembly``: whether the server puts requests split over several
      writes together; None (default) decides from the server's buffer
      size (:meth:`request_limit`): a buffer larger than Zephyr's default
      384 bytes is taken as a server configured for large packets, which
      Zephyr's smp_svr does with reassembly;
    - ``max_packet``: the largest request (and response) handled;
    - ``connect_ms``: scan and connect timeout. The adapter connects now
      unless it is connected already. A request sent while the link is down
      reconnects first (the device's upload state survives a reconnect).
    """

    def __init__(self, adapter, target=None, reassembly=None, max_packet=2475, connect_ms=10000):
        self.adapter = adapter
        self.target = target
        self.reassembly = reassembly
        self.max_packet = max_packet
        self.connect_ms = connect_ms
        self.packet = memoryview(bytearray(max_packet))
        self._reasm = bool(reassembly)
        self._rx = bytearray(max_packet)
        self._rx_mv = memoryview(self._rx)
        self._have = 0  # bytes of the response being put together
        self._want = 0  # its length from the header (0: none started)
        self._skip = 0  # bytes still to drop of a response too big to keep
        self._last = 0
        self.dropped = 0  # responses dropped (too big, or a notification lost)
        if not adapter.connected:
            adapter.connect(target, connect_ms)

    # ------------------------------------------------------------ sizes

    def request_limit(self, buf_size):
        """The largest request the server takes, given its net_buf size ``buf_size``.

        With reassembly a request may fill the server's buffer; without it
        a request must fit in one write (ATT MTU - 3).
        """
        if self.reassembly is None:
            self._reasm = buf_size > _ZEPHYR_BUF_SIZE
        limit = buf_size if buf_size < self.max_packet else self.max_packet
        if not self._reasm:
            one = self.adapter.mtu - _ATT_OVERHEAD
            if one < limit:
                limit = one
        return limit

    # ------------------------------------------------------------ send

    def send(self, length):
        """Write ``packet[:length]``: in one write, or in MTU - 3 pieces when the server reassembles.

        Reconnects first when the link is down, and once more when it drops
        in the middle of the packet (the server dropped the pieces it had);
        a full controller queue is waited on.
        """
        adapter = self.adapter
        for attempt in (0, 1):
            if not adapter.connected:
                self.reconnect(self.connect_ms)
            try:
                self._write(length)
                return
            except LinkError:
                if attempt or adapter.connected:
                    raise

    def _write(self, length):
        adapter = self.adapter
        step = adapter.mtu - _ATT_OVERHEAD
        if length > step and not self._reasm:
            raise ProtocolError("request of %d bytes does not fit one BLE write (MTU %d) and the server "
                                "does not reassemble" % (length, adapter.mtu))
        mv = self.packet
        pos = 0
        while pos < length:
            end = pos + step if pos + step < length else length
            t0 = ticks_ms()
            while not adapter.write(mv[pos:end]):
                if not adapter.connected:
                    raise LinkError("BLE link dropped while sending")
                if ticks_diff(ticks_ms(), t0) > _WRITE_STALL_MS:
                    raise LinkError("BLE controller accepted no write for %d ms" % _WRITE_STALL_MS)
                sleep_ms(1)
            pos = end

    def send_packet(self, packet):
        """Copy a whole packet (header + CBOR) in and send it (convenience)."""
        n = len(packet)
        self.packet[:n] = packet
        self.send(n)

    # ------------------------------------------------------------ receive

    def recv(self):
        """The next whole response (``bytes``, header + CBOR) or None; never blocks.

        A response longer than ``max_packet`` is dropped (counted in
        :attr:`dropped`) and raises :class:`~smpdfu.errors.FrameError`.
        """
        adapter = self.adapter
        while True:
            data = adapter.read_notification()
            if data is None:
                if self._want and ticks_diff(ticks_ms(), self._last) > _STALE_MS:
                    # Nothing queued and the rest of this response is long
                    # overdue (Zephyr sends it back to back): a notification
                    # was lost; the next one starts a new response.
                    self._want = self._have = 0
                    self.dropped += 1
                return None
            self._last = ticks_ms()
            pkt = self._take(data)
            if pkt is not None:
                return pkt

    def _take(self, data):
        # Add one notification; return a whole response when it completes one.
        n = len(data)
        if self._skip:
            self._skip -= n if n < self._skip else self._skip
            return None
        if not self._want:
            if n < HEADER_SIZE:
                self.dropped += 1
                return None
            want = HEADER_SIZE + ((data[2] << 8) | data[3])
            if want > self.max_packet:
                self.dropped += 1
                self._skip = want - n if want > n else 0
                raise FrameError("response of %d bytes is larger than the %d-byte buffer" % (want, self.max_packet))
            self._want = want
            self._have = 0
        have = self._have
        if have + n > self._want:
            n = self._want - have  # extra bytes after a whole packet: not SMP, dropped
        self._rx_mv[have:have + n] = data[:n] if n < len(data) else data
        self._have = have + n
        if self._have < self._want:
            return None
        pkt = bytes(self._rx_mv[:self._want])
        self._want = self._have = 0
        return pkt

    def wait(self, ms):
        """Block up to ``ms`` ms for a notification (or a change of the link)."""
        self.adapter.wait(ms)

    def reset(self):
        """Drop a partial response and the queued notifications."""
        for _ in range(64):
            if self.adapter.read_notification() is None:
                break
        self._want = self._have = self._skip = 0

    # ------------------------------------------------------------ link

    def reconnect(self, timeout_ms):
        """Connect again after the device dropped the link (it resets ``RESET_MS`` after answering).

        Waits a moment for the old link to drop, then scans and connects
        within ``timeout_ms``; raises :class:`NotFound` or
        :class:`~smpdfu.errors.LinkError`.
        """
        adapter = self.adapter
        t0 = ticks_ms()
        while adapter.connected and ticks_diff(ticks_ms(), t0) < _DROP_WAIT_MS:
            sleep_ms(20)
        if adapter.connected:
            adapter.disconnect()
        self.reset()
        adapter.connect(self.target, timeout_ms)

    def close(self):
        """Disconnect (and release the adapter where it has ``close``)."""
        close = getattr(self.adapter, "close", None)
        if close is not None:
            close()
        else:
            self.adapter.disconnect()
