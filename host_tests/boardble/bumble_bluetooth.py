"""MicroPython's ``bluetooth`` module (the GATT-central part) on a Bumble stack.

A test double, never deployed: it lets ``smpdfu.ble_mp`` run unchanged on
CPython against a real BLE host stack (Bumble, a virtual controller on a
LocalLink). It follows the documented API (docs/library/bluetooth.rst):
calls return at once, results arrive as ``irq(event, data)`` calls with the
documented event numbers and tuple shapes, buffers handed to the handler are
memoryviews, addresses are 6 bytes most significant first.

Install it as the module: ``sys.modules["bluetooth"] = bumble_bluetooth``
after ``bumble_bluetooth.attach(world, address)``.

Controller queue: Write Commands still in the host stack count against
``tx_queue``; one more raises ``OSError(ENOMEM)`` like NimBLE (or
``EALREADY`` like BTstack with ``full_errno``).
"""

import asyncio
import errno

from bumble import hci
from bumble.core import UUID as _BUUID
from bumble.device import ConnectionParametersPreferences

_IRQ_SCAN_RESULT = 5
_IRQ_SCAN_DONE = 6
_IRQ_PERIPHERAL_CONNECT = 7
_IRQ_PERIPHERAL_DISCONNECT = 8
_IRQ_GATTC_SERVICE_RESULT = 9
_IRQ_GATTC_SERVICE_DONE = 10
_IRQ_GATTC_CHARACTERISTIC_RESULT = 11
_IRQ_GATTC_CHARACTERISTIC_DONE = 12
_IRQ_GATTC_DESCRIPTOR_RESULT = 13
_IRQ_GATTC_DESCRIPTOR_DONE = 14
_IRQ_GATTC_WRITE_DONE = 17
_IRQ_GATTC_NOTIFY = 18
_IRQ_MTU_EXCHANGED = 21
_IRQ_ENCRYPTION_UPDATE = 28

FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010


class UUID:
    """``bluetooth.UUID(value)``: a 16-bit int or a 128-bit string."""

    def __init__(self, value):
        if isinstance(value, UUID):
            value = value._u
        if isinstance(value, int):
            self._u = _BUUID.from_16_bits(value)
        elif isinstance(value, _BUUID):
            self._u = value
        else:
            self._u = _BUUID(str(value))

    def __eq__(self, other):
        return isinstance(other, UUID) and self._u == other._u

    def __hash__(self):
        return hash(self._u)

    def __repr__(self):
        return "UUID(%s)" % self._u


def _mp_addr(address):
    # Bumble Address -> (addr_type, 6 bytes most significant first)
    kind = 0 if address.address_type in (0, 2) else 1
    return kind, bytes(reversed(bytes(address)))


class Radio:
    """What ``bluetooth.BLE()`` returns: the board's one BLE object (see :func:`attach`)."""

    def __init__(self, world, device, tx_queue=4, full_errno=errno.ENOMEM):
        self.world = world
        self.device = device
        self.tx_queue = tx_queue
        self.full_errno = full_errno
        self._active = False
        self._handler = None
        self._mtu = 23
        self._conns = {}
        self._services = {}
        self._in_flight = 0
        self._scan_task = None
        self._connecting = None
        self.writes = 0
        self.full = 0  # writes refused with full_errno
        device.on("advertisement", self._on_adv)

    # --- plumbing: every stack callback becomes an irq() in the world's thread

    def _irq(self, event, data):
        if self._handler is not None:
            self._handler(event, data)

    def _start(self, coro):
        fut = self.world.submit(coro)
        fut.add_done_callback(_report)
        return fut

    # --- configuration

    def active(self, state=None):
        if state is not None:
            self._active = bool(state)
        return self._active

    def config(self, *args, **kw):
        if args:
            if args[0] == "mtu":
                return self._mtu
            if args[0] == "mac":
                return _mp_addr(self.device.random_address)
            raise ValueError("unknown config param")
        if "mtu" in kw:
            mtu = kw.pop("mtu")
            if not 23 <= mtu <= 517:
                raise ValueError("mtu")
            self._mtu = mtu
        if kw:
            raise ValueError("unknown config param")
        return None

    def irq(self, handler):
        self._handler = handler

    def _check(self):
        if not self._active:
            raise OSError(errno.EPERM)

    # --- observer

    def gap_scan(self, duration_ms, interval_us=1280000, window_us=11250, active=False):
        self._check()
        if duration_ms is None:
            self._start(self._scan_stop())
            return
        self._start(self._scan(duration_ms, interval_us / 1000, window_us / 1000, active))

    async def _scan(self, duration_ms, interval, window, active):
        await self.device.start_scanning(active=active, scan_interval=interval, scan_window=window,
                                         filter_duplicates=False)
        me = asyncio.current_task()
        self._scan_task = me
        if duration_ms:
            try:
                await asyncio.sleep(duration_ms / 1000)
            except asyncio.CancelledError:
                return
            if self._scan_task is me:
                await self._scan_stop()

    async def _scan_stop(self):
        task, self._scan_task = self._scan_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if self.device.is_scanning:
            await self.device.stop_scanning()
        self._irq(_IRQ_SCAN_DONE, ())

    def _on_adv(self, adv):
        if self._scan_task is None:
            return
        kind, addr = _mp_addr(adv.address)
        adv_type = 4 if adv.is_scan_response else (0 if adv.is_connectable else 3)
        self._irq(_IRQ_SCAN_RESULT, (kind, memoryview(addr), adv_type, adv.rssi, memoryview(adv.data_bytes)))

    # --- central

    def gap_connect(self, addr_type, addr=None, scan_duration_ms=2000, min_conn_interval_us=None,
                    max_conn_interval_us=None):
        self._check()
        if addr_type is None:
            if self._connecting is not None:
                self._connecting.cancel()
            return
        address = hci.Address(bytes(reversed(bytes(addr))),
                              hci.Address.PUBLIC_DEVICE_ADDRESS if addr_type == 0 else hci.Address.RANDOM_DEVICE_ADDRESS)
        prefs = None
        if min_conn_interval_us or max_conn_interval_us:
            lo = (min_conn_interval_us or max_conn_interval_us) / 1000
            hi = (max_conn_interval_us or min_conn_interval_us) / 1000
            prefs = {hci.Phy.LE_1M: ConnectionParametersPreferences(connection_interval_min=lo,
                                                                    connection_interval_max=hi)}
        self._connecting = self._start(self._connect(address, bytes(addr), addr_type, scan_duration_ms, prefs))

    async def _connect(self, address, addr, addr_type, timeout_ms, prefs):
        try:
            conn = await self.device.connect(address, connection_parameters_preferences=prefs,
                                             timeout=timeout_ms / 1000)
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - any failure is a disconnect event
            self._irq(_IRQ_PERIPHERAL_DISCONNECT, (0xFFFF, addr_type, memoryview(addr)))
            return
        self._conns[conn.handle] = conn
        conn.on("disconnection", lambda reason: self._on_disconnection(conn, addr_type, addr))
        self._irq(_IRQ_PERIPHERAL_CONNECT, (conn.handle, addr_type, memoryview(addr)))

    def _on_disconnection(self, conn, addr_type, addr):
        self._conns.pop(conn.handle, None)
        self._irq(_IRQ_PERIPHERAL_DISCONNECT, (conn.handle, addr_type, memoryview(addr)))

    def gap_disconnect(self, conn_handle):
        conn = self._conns.get(conn_handle)
        if conn is None:
            return False
        self._start(conn.disconnect())
        return True

    def gap_pair(self, conn_handle):
        conn = self._conn(conn_handle)

        async def run():
            try:
                await conn.pair()
            except Exception:  # noqa: BLE001 - reported as "not encrypted", as the stacks do
                pass
            enc = bool(conn.is_encrypted)
            self._irq(_IRQ_ENCRYPTION_UPDATE, (conn_handle, enc, bool(conn.authenticated), False, 16 if enc else 0))

        self._start(run())

    def _conn(self, conn_handle):
        conn = self._conns.get(conn_handle)
        if conn is None:
            raise OSError(errno.ENOTCONN)
        return conn

    # --- GATT client

    def gattc_exchange_mtu(self, conn_handle):
        conn = self._conn(conn_handle)

        async def run():
            mtu = await conn.gatt_client.request_mtu(self._mtu)
            self._irq(_IRQ_MTU_EXCHANGED, (conn_handle, mtu))

        self._start(run())

    def gattc_discover_services(self, conn_handle, uuid=None):
        conn = self._conn(conn_handle)

        async def run():
            status = 0
            try:
                found = await conn.gatt_client.discover_services([uuid._u] if uuid is not None else [])
            except Exception:  # noqa: BLE001 - reported as a status, as the stacks do
                found, status = [], 1
            for s in found:
                self._services[(conn_handle, s.handle)] = s
                self._irq(_IRQ_GATTC_SERVICE_RESULT, (conn_handle, s.handle, s.end_group_handle, UUID(s.uuid)))
            self._irq(_IRQ_GATTC_SERVICE_DONE, (conn_handle, status))

        self._start(run())

    def gattc_discover_characteristics(self, conn_handle, start_handle, end_handle, uuid=None):
        conn = self._conn(conn_handle)
        svc = self._services.get((conn_handle, start_handle))

        async def run():
            status = 0
            try:
                found = await conn.gatt_client.discover_characteristics([uuid._u] if uuid is not None else [], svc)
            except Exception:  # noqa: BLE001
                found, status = [], 1
            subs = conn.gatt_client.notification_subscribers
            for c in found:
                if not start_handle <= c.handle <= end_handle:
                    continue
                # The stack delivers every notification to irq(); no per-handle subscription.
                subs.setdefault(c.handle, set()).add(self._notifier(conn_handle, c.handle))
                self._irq(_IRQ_GATTC_CHARACTERISTIC_RESULT,
                          (conn_handle, c.end_group_handle, c.handle, int(c.properties), UUID(c.uuid)))
            self._irq(_IRQ_GATTC_CHARACTERISTIC_DONE, (conn_handle, status))

        self._start(run())

    def _notifier(self, conn_handle, handle):
        def cb(value):
            self._irq(_IRQ_GATTC_NOTIFY, (conn_handle, handle, memoryview(bytes(value))))
        return cb

    def gattc_discover_descriptors(self, conn_handle, start_handle, end_handle):
        conn = self._conn(conn_handle)

        async def run():
            status = 0
            try:
                found = await conn.gatt_client.discover_descriptors(start_handle=start_handle, end_handle=end_handle)
            except Exception:  # noqa: BLE001
                found, status = [], 1
            for d in found:
                self._irq(_IRQ_GATTC_DESCRIPTOR_RESULT, (conn_handle, d.handle, UUID(d.type)))
            self._irq(_IRQ_GATTC_DESCRIPTOR_DONE, (conn_handle, status))

        self._start(run())

    def gattc_write(self, conn_handle, value_handle, data, mode=0):
        conn = self._conn(conn_handle)
        if mode == 0 and self._in_flight >= self.tx_queue:
            self.full += 1
            raise OSError(self.full_errno)
        data = bytes(data)  # the caller may reuse its buffer at once
        if mode == 0 and len(data) > conn.att_mtu - 3:
            raise OSError(errno.EINVAL)  # a Write Command must fit one ATT PDU
        self.writes += 1
        if mode == 0:
            self._in_flight += 1

        async def run():
            status = 1
            # A write still queued when its link died is dropped, as NimBLE and
            # BTstack do: sent now, it would go out by connection handle, and a
            # new link may have been given the same handle.
            if self._conns.get(conn_handle) is conn:
                try:
                    await conn.gatt_client.write_value(value_handle, data, with_response=bool(mode))
                    status = 0
                except Exception:  # noqa: BLE001
                    pass
            if mode == 0:
                self._in_flight -= 1
            else:
                self._irq(_IRQ_GATTC_WRITE_DONE, (conn_handle, value_handle, status))

        self._start(run())


def _report(fut):
    # Surface exceptions of background operations instead of losing them.
    if not fut.cancelled() and fut.exception() is not None:
        import traceback

        traceback.print_exception(fut.exception())


_ble = None


def attach(world, hci=None, address="C0:C1:C2:C3:C4:C5", **kw):
    """Give this module a board: a Bumble device on ``world`` (its controller
    at transport spec ``hci``) behind ``BLE()``."""
    global _ble
    _ble = Radio(world, world.new_device("board", address, hci), **kw)
    return _ble


def BLE():  # noqa: N802 - MicroPython's name
    """The singleton, as on a board."""
    if _ble is None:
        raise OSError(errno.ENODEV)
    return _ble
