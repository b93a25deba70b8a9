"""BLE adapter on MicroPython's built-in ``bluetooth`` module (a GATT central).

Implements the adapter contract of ``smpdfu.ble`` (docs/architecture.md):
scan, connect, MTU exchange, discovery of the SMP characteristic, notifications
on, Write Commands out. It talks to the low-level IRQ API directly, not through
aioble, whose client keeps only the newest notification: an SMP response
longer than one notification would lose pieces there. Here every notification
is copied, whole, into a ring of preallocated slots.

Works where MicroPython has a GATT client: ESP32 (NimBLE), Pico W / Pico 2 W
(BTstack), STM32WB55.
"""

from .ble import SMP_CHAR_UUID, SMP_SERVICE_UUID, NotFound
from .ble_target import adv_matches, parse_address
from .compat import const, sleep_ms, ticks_diff, ticks_ms
from .errors import LinkError

# IRQ event codes (docs: library/bluetooth.rst); not on the module, to save RAM.
_IRQ_SCAN_RESULT = const(5)
_IRQ_SCAN_DONE = const(6)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_GATTC_SERVICE_RESULT = const(9)
_IRQ_GATTC_SERVICE_DONE = const(10)
_IRQ_GATTC_CHARACTERISTIC_RESULT = const(11)
_IRQ_GATTC_CHARACTERISTIC_DONE = const(12)
_IRQ_GATTC_DESCRIPTOR_RESULT = const(13)
_IRQ_GATTC_DESCRIPTOR_DONE = const(14)
_IRQ_GATTC_WRITE_DONE = const(17)
_IRQ_GATTC_NOTIFY = const(18)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_ENCRYPTION_UPDATE = const(28)

# gattc_write on a full controller queue: NimBLE raises ENOMEM, BTstack
# (Pico W) EALREADY until its one queued Write Command is sent.
_ENOMEM = const(12)
_EALREADY = const(114)
_EBUSY = const(16)

_CCCD = const(0x2902)
_NO_CONN = const(-1)
_STEP_MS = const(2000)  # each GATT step after connecting (discovery, MTU, subscribe)
_PAIR_MS = const(10000)


class MPBLEAdapter:
    """A connection to one SMP peripheral through ``bluetooth.BLE()``.

    ``mtu``: the ATT MTU asked for (the result is the smaller of it and the
    peripheral's; Zephyr's smp_svr allows 498). ``rx_slots``: notifications
    held until read, each of MTU-3 bytes (a pipelined upload has a few small
    answers in flight; 8 slots of 509 bytes take about 4 KB).
    ``interval_us``: (min, max) connection interval asked for; short means
    fast. ``pair``: pair after connecting (``gap_pair``, with the port's
    ``config(bond=, mitm=, io=)`` settings), for a peripheral whose SMP
    characteristic needs an encrypted link. ``ble``: the ``BLE`` object
    (default ``bluetooth.BLE()``); this takes over its ``irq`` handler.
    """

    def __init__(self, ble=None, mtu=512, rx_slots=8, interval_us=(7500, 15000), pair=False):
        import bluetooth  # here, not at the top: importing this module needs no radio

        self._ble = ble if ble is not None else bluetooth.BLE()
        self._svc_uuid = bluetooth.UUID(SMP_SERVICE_UUID)
        self._chr_uuid = bluetooth.UUID(SMP_CHAR_UUID)
        self._cccd_uuid = bluetooth.UUID(_CCCD)
        self._want_mtu = mtu
        self._interval = interval_us
        self._pair = pair
        self.encrypted = False
        self._slots = rx_slots
        self._slot = 0  # bytes per slot, set at the first connection
        self._ring = None
        self._lens = [0] * rx_slots
        self.dropped = 0  # notifications lost to a full ring (the client retries)
        self.mtu = 23
        self._conn = _NO_CONN
        self._addr = None
        self._match = None
        self._want_name = None
        self._events = 0
        self._clear()
        self._ble.active(True)
        self._ble.irq(self._irq)

    # ------------------------------------------------------------ IRQ side

    def _clear(self):
        self._r = 0  # read and write indexes run modulo 2*slots: equal = empty
        self._w = 0
        self._held = False
        self._scan = False
        self._found = None
        self._range = None
        self._value = None
        self._cccd = None
        self._done = None

    def _push(self, data):
        n = self._slots
        w = self._w
        if (w - self._r) % (2 * n) == n or len(data) > self._slot:
            self.dropped += 1
            return
        s = w % n
        a = s * self._slot
        self._ring[a:a + len(data)] = data
        self._lens[s] = len(data)
        self._w = (w + 1) % (2 * n)

    def _irq(self, event, data):
        # Runs in the stack's callback context: copy what is kept, raise nothing.
        if event == _IRQ_GATTC_NOTIFY:
            conn, handle, payload = data
            if conn == self._conn and handle == self._value:
                self._push(payload)
        elif event == _IRQ_SCAN_RESULT:
            addr_type, addr, _adv_type, _rssi, adv = data
            if self._found is None and self._scan_match(addr, adv):
                self._found = (addr_type, bytes(addr))
        elif event == _IRQ_SCAN_DONE:
            self._scan = False
        elif event == _IRQ_PERIPHERAL_CONNECT:
            conn, _addr_type, addr = data
            if self._addr is not None and bytes(addr) == self._addr:
                self._conn = conn
        elif event == _IRQ_PERIPHERAL_DISCONNECT:
            conn, _addr_type, addr = data
            if conn == self._conn or (self._addr is not None and bytes(addr) == self._addr):
                self._conn = _NO_CONN
                self._done = -1
        elif event == _IRQ_GATTC_SERVICE_RESULT:
            _conn, start, end, uuid = data
            if uuid == self._svc_uuid:
                self._range = (start, end)
        elif event == _IRQ_GATTC_CHARACTERISTIC_RESULT:
            _conn, _end, value_handle, _props, uuid = data
            if uuid == self._chr_uuid:
                self._value = value_handle
        elif event == _IRQ_GATTC_DESCRIPTOR_RESULT:
            _conn, handle, uuid = data
            if uuid == self._cccd_uuid and self._cccd is None:
                self._cccd = handle
        elif event in (_IRQ_GATTC_SERVICE_DONE, _IRQ_GATTC_CHARACTERISTIC_DONE, _IRQ_GATTC_DESCRIPTOR_DONE):
            self._done = data[-1]
        elif event == _IRQ_GATTC_WRITE_DONE:
            self._done = data[2]
        elif event == _IRQ_MTU_EXCHANGED:
            self.mtu = data[1]
            self._done = 0
        elif event == _IRQ_ENCRYPTION_UPDATE:
            self.encrypted = bool(data[1])
            self._done = 0 if self.encrypted else 1
        self._events += 1

    def _scan_match(self, addr, adv):
        if self._match is not None:
            return bytes(addr) == self._match
        return adv_matches(adv, self._want_name)

    def _unread(self):
        # Notifications queued and not handed out yet.
        return (self._w - self._r) % (2 * self._slots) - (1 if self._held else 0)

    # ------------------------------------------------------------ connect

    def _until(self, cond, timeout_ms):
        # Poll until cond() or timeout; True when cond() held.
        t0 = ticks_ms()
        while not cond():
            if ticks_diff(ticks_ms(), t0) >= timeout_ms:
                return False
            sleep_ms(1)
        return True

    def _step(self, what, start):
        # One GATT procedure: start it, wait for its DONE event.
        self._done = None
        start()
        if not self._until(lambda: self._done is not None, _STEP_MS):
            raise LinkError("BLE: no answer to %s" % what)
        if self._done == -1:
            raise LinkError("BLE: disconnected during %s" % what)
        if self._done:
            raise LinkError("BLE: %s failed (status %d)" % (what, self._done))

    def connect(self, target=None, timeout_ms=10000):
        """Scan for ``target`` (a name, an ``"AA:BB:.."`` address, or None for the
        first device advertising the SMP service), connect and subscribe.

        Raises :class:`~smpdfu.ble.NotFound` when nothing matches within
        ``timeout_ms``, :class:`~smpdfu.errors.LinkError` when a step after
        that fails.
        """
        self.disconnect()
        self._clear()
        addr = parse_address(target)
        self._match = addr
        self._want_name = None if target is None or addr is not None else target.encode()
        ble = self._ble
        self._scan = True
        # Active scan: Zephyr puts the name in the scan response.
        ble.gap_scan(timeout_ms, 30000, 30000, True)
        found = self._until(lambda: self._found is not None or not self._scan, timeout_ms + 500)
        if self._scan:
            ble.gap_scan(None)
            self._until(lambda: not self._scan, 500)
        if not found or self._found is None:
            raise NotFound("BLE: no device %s within %d ms" % (
                "advertising the SMP service" if target is None else repr(target), timeout_ms))
        addr_type, self._addr = self._found
        ble.config(mtu=self._want_mtu)
        self._done = None
        ble.gap_connect(addr_type, self._addr, timeout_ms, self._interval[0], self._interval[1])
        if not self._until(lambda: self._conn != _NO_CONN or self._done == -1, timeout_ms):
            ble.gap_connect(None)
            raise LinkError("BLE: connecting to %r timed out" % (target,))
        if self._conn == _NO_CONN:
            raise LinkError("BLE: connecting to %r failed" % (target,))
        try:
            self._setup()
        except LinkError:
            self.disconnect()
            raise

    def _setup(self):
        ble = self._ble
        conn = self._conn
        self.mtu = 23
        self.encrypted = False
        if self._pair:
            self._done = None
            ble.gap_pair(conn)
            if not self._until(lambda: self._done is not None, _PAIR_MS) or not self.encrypted:
                raise LinkError("BLE: pairing failed" if self.connected else "BLE: disconnected while pairing")
        try:
            self._step("the MTU exchange", lambda: ble.gattc_exchange_mtu(conn))
        except (LinkError, OSError):
            if not self.connected:
                raise LinkError("BLE: disconnected during the MTU exchange")
            # The stack may have exchanged already; keep what it reported.
        self._step("service discovery", lambda: ble.gattc_discover_services(conn, self._svc_uuid))
        if self._range is None:
            raise LinkError("BLE: the device has no SMP service")
        start, end = self._range
        self._step("characteristic discovery",
                   lambda: ble.gattc_discover_characteristics(conn, start, end, self._chr_uuid))
        if self._value is None:
            raise LinkError("BLE: the device has no SMP characteristic")
        self._step("descriptor discovery", lambda: ble.gattc_discover_descriptors(conn, self._value + 1, end))
        if self._cccd is None:
            raise LinkError("BLE: the SMP characteristic has no CCCD (no notifications)")
        slot = self.mtu - 3
        if slot > self._slot:
            self._slot = 0  # the IRQ drops notifications while the ring is replaced
            self._ring = None
            self._ring = memoryview(bytearray(slot * self._slots))
            self._slot = slot
        self._r = self._w = 0
        self._held = False
        self._step("subscribing", lambda: ble.gattc_write(conn, self._cccd, b"\x01\x00", 1))

    # ------------------------------------------------------------ the contract

    @property
    def connected(self):
        """Whether the link is up."""
        return self._conn != _NO_CONN

    def write(self, buf):
        """Send ``buf`` (at most ``mtu - 3`` bytes) as one Write Command.

        Returns False when the controller's queue is full (retry later).
        """
        if self._conn == _NO_CONN:
            raise LinkError("BLE: not connected")
        try:
            self._ble.gattc_write(self._conn, self._value, buf, 0)
        except OSError as e:
            if e.args and e.args[0] in (_ENOMEM, _EALREADY, _EBUSY) and self._conn != _NO_CONN:
                return False
            raise LinkError("BLE: write failed: %s" % e)
        return True

    def read_notification(self):
        """The oldest notification not read yet (a memoryview, valid until the
        next call), or None. Never blocks."""
        n = self._slots
        if self._held:  # free the slot handed out last time
            self._r = (self._r + 1) % (2 * n)
            self._held = False
        if self._r == self._w:
            return None
        s = self._r % n
        self._held = True
        a = s * self._slot
        return self._ring[a:a + self._lens[s]]

    def wait(self, ms):
        """Block up to ``ms`` ms until a notification is queued or the link changes."""
        seen = self._events
        t0 = ticks_ms()
        while self._events == seen and not self._unread() and ticks_diff(ticks_ms(), t0) < ms:
            sleep_ms(1)

    def disconnect(self):
        """Drop the connection (if any) and wait briefly for the stack to confirm."""
        if self._conn == _NO_CONN:
            return
        try:
            self._ble.gap_disconnect(self._conn)
        except OSError:
            pass
        self._until(lambda: self._conn == _NO_CONN, 1000)
        self._conn = _NO_CONN
