"""The MicroPython BLE adapter's own logic on real MicroPython (and CPython):
a scripted ``bluetooth`` module answers each call with the documented IRQ
events, so the scan match, the GATT steps, the notification ring and the
full-queue path run without a radio. (The same adapter against a real BLE
stack: host_tests/test_ble_mp.py.)
"""

import sys

from smpdfu.ble import NotFound
from smpdfu.ble_target import SMP_SERVICE_LE, parse_address
from smpdfu.errors import LinkError

from _portable import raises

_NAME = b"nrf-a"
_ADDR = b"\xf0\xf1\xf2\xf3\xf4\xf5"


class UUID:
    def __init__(self, v):
        self.v = v.upper() if isinstance(v, str) else v

    def __eq__(self, other):
        return isinstance(other, UUID) and self.v == other.v


class ScriptedBLE:
    """Answers like a stack with one SMP peripheral in range (events delivered at once)."""

    def __init__(self, mtu=100, queue=2, full_errno=12, peer=None):
        self.irq_fn = None
        self.peer = peer  # a FakeBLEAdapter standing for the nRF: answers what is written
        self.peer_mtu = mtu
        self.queue = queue
        self.full_errno = full_errno
        self.written = []
        self.subscribed = False
        self.conn = None
        self.advertising = True
        self.pairable = True

    def active(self, *a):
        return True

    def irq(self, fn):
        self.irq_fn = fn

    def config(self, mtu=None):
        self.mtu = mtu

    def gap_scan(self, duration, interval=0, window=0, active=False):
        if duration is None:
            return
        if self.advertising:
            other = bytes([2, 1, 6, 4, 9]) + b"xyz"
            self.irq_fn(5, (0, memoryview(b"\x01\x02\x03\x04\x05\x06"), 0, -40, memoryview(other)))
            adv = bytes([2, 1, 6, 17, 7]) + SMP_SERVICE_LE + bytes([len(_NAME) + 1, 9]) + _NAME
            self.irq_fn(5, (1, memoryview(_ADDR), 0, -40, memoryview(adv)))
        self.irq_fn(6, ())

    def gap_connect(self, addr_type, addr=None, *a):
        if addr_type is None:
            return
        assert bytes(addr) == _ADDR and addr_type == 1
        self.conn = 64
        if self.peer is not None:
            self.peer.connect(None, 0)
        self.irq_fn(7, (64, 1, memoryview(_ADDR)))

    def gap_disconnect(self, conn):
        self.conn = None
        if self.peer is not None:
            self.peer.disconnect()
        self.irq_fn(8, (conn, 1, memoryview(_ADDR)))
        return True

    def gap_pair(self, conn):
        self.irq_fn(28, (conn, self.pairable, False, False, 16 if self.pairable else 0))

    def gattc_exchange_mtu(self, conn):
        self.irq_fn(21, (conn, min(self.mtu, self.peer_mtu)))

    def gattc_discover_services(self, conn, uuid=None):
        self.irq_fn(9, (conn, 1, 5, UUID(0x1801)))
        self.irq_fn(9, (conn, 10, 14, UUID("8d53dc1d-1db7-4cd3-868b-8a527460aa84")))
        self.irq_fn(10, (conn, 0))

    def gattc_discover_characteristics(self, conn, start, end, uuid=None):
        assert (start, end) == (10, 14)
        self.irq_fn(11, (conn, 13, 12, 0x14, UUID("da2e7828-fbce-4e01-ae9e-261174997c48")))
        self.irq_fn(12, (conn, 0))

    def gattc_discover_descriptors(self, conn, start, end):
        self.irq_fn(13, (conn, 13, UUID(0x2902)))
        self.irq_fn(14, (conn, 0))

    def gattc_write(self, conn, handle, data, mode=0):
        if self.conn != conn:
            raise OSError(107)  # ENOTCONN
        if mode == 1:
            assert handle == 13 and bytes(data) == b"\x01\x00"
            self.subscribed = True
            self.irq_fn(17, (conn, handle, 0))
            return
        if self.peer is not None:
            self.peer.write(bytes(data))
            while True:
                n = self.peer.read_notification()
                if n is None:
                    return
                self.notify(n)
        if len(self.written) >= self.queue:
            raise OSError(self.full_errno)
        self.written.append(bytes(data))

    def notify(self, data):
        self.irq_fn(18, (self.conn, 12, memoryview(data)))


class _Module:
    def __init__(self, ble):
        self.UUID = UUID
        self._ble = ble

    def BLE(self):  # noqa: N802
        return self._ble


def adapter(**kw):
    ble = ScriptedBLE(**{k: kw.pop(k) for k in list(kw) if k in ("mtu", "queue", "full_errno", "peer")})
    old = sys.modules.get("bluetooth")
    sys.modules["bluetooth"] = _Module(ble)
    try:
        from smpdfu.ble_mp import MPBLEAdapter

        return MPBLEAdapter(**kw), ble
    finally:
        if old is None:
            del sys.modules["bluetooth"]
        else:
            sys.modules["bluetooth"] = old


def test_service_uuid_in_advertising_order():
    from binascii import unhexlify

    from smpdfu.ble import SMP_SERVICE_UUID

    assert bytes(reversed(unhexlify(SMP_SERVICE_UUID.replace("-", "")))) == SMP_SERVICE_LE


def test_parse_address():
    assert parse_address("F0:F1:F2:F3:F4:F5") == _ADDR
    assert parse_address("f0:f1:f2:f3:f4:f5") == _ADDR
    assert parse_address("nrf-a") is None
    assert parse_address("F0-F1-F2-F3-F4-F5") is None
    assert parse_address("G0:F1:F2:F3:F4:F5") is None


def test_connect_by_name_address_and_service():
    for target in ("nrf-a", "F0:F1:F2:F3:F4:F5", None):
        a, ble = adapter()
        a.connect(target, 100)
        assert a.connected and ble.subscribed
        assert a.mtu == 100


def test_not_found_names_the_target():
    a, ble = adapter()
    e = raises(NotFound, a.connect, "other", 50)
    assert "'other'" in str(e)
    ble.advertising = False
    e = raises(NotFound, a.connect, None, 50)
    assert "SMP service" in str(e)


def test_notifications_queue_in_order_whole():
    a, ble = adapter(rx_slots=4)
    a.connect("nrf-a", 100)
    assert a.read_notification() is None
    for i in range(3):
        ble.notify(bytes([i]) * (10 + i))
    got = []
    while True:
        n = a.read_notification()
        if n is None:
            break
        got.append(bytes(n))
    assert got == [b"\x00" * 10, b"\x01" * 11, b"\x02" * 12]
    assert a.dropped == 0


def test_full_ring_counts_drops_and_keeps_the_rest():
    a, ble = adapter(rx_slots=2)
    a.connect("nrf-a", 100)
    for i in range(4):
        ble.notify(bytes([i]) * 5)
    assert a.dropped == 2
    assert bytes(a.read_notification()) == b"\x00" * 5
    assert bytes(a.read_notification()) == b"\x01" * 5
    assert a.read_notification() is None
    ble.notify(b"after")  # room again
    assert bytes(a.read_notification()) == b"after"


def test_held_notification_is_not_overwritten():
    # The view handed out stays valid until the next read, even with the ring full behind it.
    a, ble = adapter(rx_slots=2)
    a.connect("nrf-a", 100)
    ble.notify(b"first")
    held = a.read_notification()
    ble.notify(b"second")
    ble.notify(b"third")  # the ring is full (one slot is held): dropped
    assert bytes(held) == b"first"
    assert a.dropped == 1
    assert bytes(a.read_notification()) == b"second"


def test_full_queue_returns_false_then_disconnect_raises():
    for errno_ in (12, 114):  # NimBLE ENOMEM, BTstack EALREADY
        a, ble = adapter(queue=1, full_errno=errno_)
        a.connect("nrf-a", 100)
        assert a.write(b"one") is True
        assert a.write(b"two") is False
        ble.written.clear()
        assert a.write(b"two") is True
        ble.gap_disconnect(64)
        assert not a.connected
        raises(LinkError, a.write, b"three")


def test_pairing():
    a, ble = adapter(pair=True)
    a.connect("nrf-a", 100)
    assert a.encrypted and a.connected
    a, ble = adapter(pair=True)
    ble.pairable = False
    e = raises(LinkError, a.connect, "nrf-a", 100)
    assert "pairing failed" in str(e)
    assert not a.connected


def test_irq_copy_allocates_nothing():
    # The IRQ handler runs in the stack's callback context: copying a
    # notification into the ring must not touch the heap.
    try:
        import micropython

        lock, unlock = micropython.heap_lock, micropython.heap_unlock
    except (ImportError, AttributeError):
        from _portable import skip

        skip("heap_lock is MicroPython's")
    a, ble = adapter(rx_slots=4)
    a.connect("nrf-a", 100)
    data = memoryview(bytes(range(60)))
    event = (64, 12, data)
    lock()
    try:
        a._irq(18, event)
        a._irq(18, event)
    finally:
        unlock()
    assert bytes(a.read_notification()) == bytes(data)
    assert bytes(a.read_notification()) == bytes(data)


def test_upload_through_the_adapter_and_the_transport():
    # ble_mp under the portable BLETransport and SMPClient, the nRF being the
    # fake peer (smpdev's server): a whole upload, on MicroPython too.
    import io

    from fakeble import FakeBLEAdapter
    from smpdev import SMPDevice
    from streams import pattern_bytes

    from smpdfu.ble import BLETransport
    from smpdfu.client import SMPClient

    dev = SMPDevice(buf_size=2475, buf_count=4)
    a, ble = adapter(mtu=498, peer=FakeBLEAdapter(dev, mtu=498))
    c = SMPClient(BLETransport(a, "nrf-a", connect_ms=100), timeout_ms=1000)
    size = 12 * 1024 + 5
    img = pattern_bytes(size)
    r = c.upload(io.BytesIO(img))
    assert r.match is True and dev.slot(1, size) == img
    assert a.mtu == 498 and max(ble.peer.write_sizes) == 495 and ble.peer.bad_writes == 0
    assert a.dropped == 0
