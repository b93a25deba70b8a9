"""BLE adapter on CircuitPython's ``adafruit_ble`` (a GATT central).

Implements the adapter contract of ``smpdfu.ble`` (docs/architecture.md) with
the Adafruit library (``circup install adafruit_ble``): ``BLERadio`` scans and
connects, a ``Service`` subclass finds Zephyr's SMP service, and a
``_bleio.PacketBuffer`` on its characteristic moves whole packets: each
``write`` is one Write Command, each notification is read whole. (The stream
characteristics cut writes at 20 bytes; they are not used.)

Central works on the nRF52840 CircuitPython boards; their stack asks for a
512-byte ATT MTU and data length extension by itself.
"""

import _bleio
from adafruit_ble import BLERadio
from adafruit_ble.advertising import Advertisement
from adafruit_ble.advertising.standard import ProvideServicesAdvertisement
from adafruit_ble.services import Service
from adafruit_ble.uuid import VendorUUID

from .ble import SMP_CHAR_UUID, SMP_SERVICE_UUID, NotFound
from .ble_target import parse_address
from .compat import const, sleep_ms, ticks_diff, ticks_ms
from .errors import LinkError

_MAX_PACKET = const(512)


class SMPService(Service):
    """Zephyr's SMP service (a remote service: only found, never served)."""

    uuid = VendorUUID(SMP_SERVICE_UUID)


class CPBLEAdapter:
    """A connection to one SMP peripheral through ``adafruit_ble``.

    ``rx_packets``: notifications the PacketBuffer holds until read (its
    ring drops the oldest when full). ``pair``: pair (and bond) after
    connecting, for a peripheral whose SMP characteristic needs encryption.
    ``radio``: a ``BLERadio`` (default: one on the built-in adapter).
    """

    def __init__(self, radio=None, rx_packets=8, pair=False):
        self._radio = radio if radio is not None else BLERadio()
        self._chr_uuid = VendorUUID(SMP_CHAR_UUID)
        self._slots = rx_packets
        self._pair = pair
        self._conn = None
        self._pb = None
        self.mtu = 23
        self._out_len = 20
        self._short = False
        self._flush = None
        self._gap_ms = 0
        self.dropped = 0  # notifications too long for our buffer (never with MTU <= 512)
        # Two read buffers: the view handed out stays valid while wait() reads ahead.
        self._bufs = (memoryview(bytearray(_MAX_PACKET)), memoryview(bytearray(_MAX_PACKET)))
        self._cur = 0
        self._ahead = 0  # length of a packet wait() already read into the other buffer

    # ------------------------------------------------------------ connect

    def _find(self, target, timeout_ms):
        addr = parse_address(target)
        if addr is not None:
            addr = bytes(addr[i] for i in range(5, -1, -1))  # _bleio addresses are little-endian
        kinds = (ProvideServicesAdvertisement,) if target is None else (Advertisement,)
        radio = self._radio
        try:
            for adv in radio.start_scan(*kinds, timeout=timeout_ms / 1000, active=True, minimum_rssi=-127):
                if target is None:
                    ok = SMPService in adv.services
                elif addr is not None:
                    ok = adv.address.address_bytes == addr
                else:
                    ok = target in (adv.complete_name, adv.short_name)
                if ok:
                    return adv
        finally:
            radio.stop_scan()
        return None

    def connect(self, target=None, timeout_ms=10000):
        """Scan for ``target`` (a name, an ``"AA:BB:.."`` address, or None for the
        first device advertising the SMP service), connect and subscribe.

        Raises :class:`~smpdfu.ble.NotFound` when nothing matches within
        ``timeout_ms``, :class:`~smpdfu.errors.LinkError` when a later step fails.
        """
        self.disconnect()
        adv = self._find(target, timeout_ms)
        if adv is None:
            raise NotFound("BLE: no device %s within %d ms" % (
                "advertising the SMP service" if target is None else repr(target), timeout_ms))
        try:
            self._conn = self._radio.connect(adv, timeout=timeout_ms / 1000)
        except _bleio.BluetoothError as e:
            raise LinkError("BLE: connecting to %r failed: %s" % (target, e))
        try:
            self._setup()
        except (_bleio.BluetoothError, KeyError, AttributeError) as e:
            self.disconnect()
            raise LinkError("BLE: %s" % e)
        except LinkError:
            self.disconnect()
            raise

    def _setup(self):
        conn = self._conn
        if self._pair and not conn.paired:
            conn.pair()
        svc = conn[SMPService]  # KeyError: no SMP service
        char = None
        for c in svc.bleio_service.characteristics:
            if c.uuid == self._chr_uuid.bleio_uuid:
                char = c
        if char is None:
            raise LinkError("the device has no SMP characteristic")
        self._pb = _bleio.PacketBuffer(char, buffer_size=self._slots, max_packet_size=_MAX_PACKET)
        self._flush = getattr(self._pb, "flush", None)
        # Without flush(): a queued packet leaves within a connection event or two.
        self._gap_ms = int(2 * conn.connection_interval) + 1
        self._out_len = self._pb.outgoing_packet_length
        self.mtu = self._out_len + 3
        self._short = False
        self._ahead = 0

    # ------------------------------------------------------------ the contract

    @property
    def connected(self):
        """Whether the link is up."""
        return self._conn is not None and self._conn.connected

    def write(self, buf):
        """Send ``buf`` (at most ``mtu - 3`` bytes) as one Write Command.

        PacketBuffer appends a write to a packet not sent yet when it fits, so
        after a short write this first waits for it to leave (``flush()``
        where the port has it, else two connection intervals): two SMP
        packets must never share one Write Command. Blocks while the queue
        is full, so it never returns False.
        """
        pb = self._pb
        if pb is None or not self.connected:
            raise LinkError("BLE: not connected")
        if self._short:
            if self._flush is not None:
                self._flush()
            else:
                sleep_ms(self._gap_ms)
        if pb.write(buf) < 0:
            raise LinkError("BLE: disconnected")
        self._short = len(buf) < self._out_len
        return True

    def _read(self, into):
        n = self._pb.readinto(into)
        if n < 0:
            self.dropped += 1
            return 0
        return n

    def read_notification(self):
        """The oldest notification not read yet (a memoryview, valid until the
        next call), or None. Never blocks."""
        if self._pb is None:
            return None
        if self._ahead:
            n = self._ahead
            self._ahead = 0
            self._cur ^= 1
            return self._bufs[self._cur][:n]
        n = self._read(self._bufs[self._cur ^ 1])
        if not n:
            return None
        self._cur ^= 1
        return self._bufs[self._cur][:n]

    def wait(self, ms):
        """Block up to ``ms`` ms until a notification is queued or the link drops."""
        t0 = ticks_ms()
        while not self._ahead and self.connected:
            self._ahead = self._read(self._bufs[self._cur ^ 1])
            if self._ahead or ticks_diff(ticks_ms(), t0) >= ms:
                return
            sleep_ms(1)

    def disconnect(self):
        """Drop the connection (if any)."""
        if self._pb is not None:
            try:
                self._pb.deinit()
            except (_bleio.BluetoothError, AttributeError):
                pass
            self._pb = None
        if self._conn is not None:
            if self._conn.connected:
                self._conn.disconnect()
            self._conn = None
