"""The PC's BLE adapter: a Bumble central (see docs/architecture.md, the BLE adapter contract).

``BumbleAdapter(hci)`` opens a Bumble HCI transport (``usb:0``,
``serial:/dev/ttyACM0``, ``hci-socket:0``, ``tcp-client:127.0.0.1:PORT`` of
``smpdfu emulate --ble``, ...) and runs Bumble's asyncio loop on a thread,
so the synchronous :class:`smpdfu.ble.BLETransport` and client can use it.
Notifications queue up whole, in order, none dropped.
"""

import collections
import threading

from bumble.att import ATT_Error, ErrorCode
from bumble.core import UUID, AdvertisingData
from bumble.device import ConnectionParametersPreferences, Device, Peer
from bumble.hci import Address, Phy
from bumble.transport import open_transport

from smpdfu.ble import SMP_CHAR_UUID, SMP_SERVICE_UUID, NotFound, is_address
from smpdfu.errors import LinkError

from .bumble_loop import LoopThread

_OWN_ADDRESS = "F0:F1:F2:F3:F4:F6"  # static random address of the central
_MTU = 517  # the largest ATT MTU; the peripheral answers with its own limit
_NEEDS_PAIRING = (ErrorCode.INSUFFICIENT_ENCRYPTION, ErrorCode.INSUFFICIENT_AUTHENTICATION)


def _matches(adv, target):
    """Does advertisement ``adv`` match ``target`` (name, address or None: the SMP service)?"""
    if target is None:
        uuids = adv.data.get(AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS) or []
        uuids += adv.data.get(AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS) or []
        return UUID(SMP_SERVICE_UUID) in uuids
    if is_address(target):
        return str(adv.address).split("/")[0].upper() == target.upper()
    name = (adv.data.get(AdvertisingData.COMPLETE_LOCAL_NAME)
            or adv.data.get(AdvertisingData.SHORTENED_LOCAL_NAME))
    return name == target


def _why(e):
    # One line for an exception: Bumble's ATT errors print whole PDUs in color.
    if isinstance(e, ATT_Error):
        return "the device answered %s" % ErrorCode(e.error_code).name
    text = str(e).strip().splitlines()
    return "%s%s" % (type(e).__name__, ": " + text[0] if text else "")


class BumbleAdapter:
    """A BLE central on a Bumble HCI transport (the adapter contract of :mod:`smpdfu.ble`).

    ``interval_ms``: the connection interval asked for (the peripheral may
    change it). ``pair``: None (default) pairs when the device asks for
    encryption (subscribing fails with insufficient encryption or
    authentication), True pairs right after connecting, False never.
    Pairing is Bumble's default: LE Secure Connections, Just Works, bonding
    in memory. Call :meth:`close` to release the HCI transport.
    """

    def __init__(self, hci, interval_ms=7.5, pair=None):
        self.hci = hci
        self.interval_ms = interval_ms
        self.pair = pair
        self.mtu = 23
        self._loop = None
        self._transport = None
        self._device = None
        self._conn = None
        self._char = None
        self._rx = collections.deque()
        self._event = threading.Event()

    # --- the adapter contract ----------------------------------------------------------

    def connect(self, target, timeout_ms):
        """Scan for ``target``, connect, ask the largest MTU, find the SMP characteristic, subscribe."""
        if self._loop is None:
            self._loop = LoopThread("bumble-central")
        try:
            self._loop.run(self._connect(target, timeout_ms / 1000.0))
        except (NotFound, LinkError):
            raise
        except Exception as e:  # noqa: BLE001 - Bumble's errors, as one kind
            self._drop()
            raise LinkError("BLE connection to %s failed: %s" % (target or "the SMP service", _why(e))) from e

    @property
    def connected(self):
        """True while the link is up."""
        return self._conn is not None

    def write(self, buf):
        """Send ``buf`` (at most mtu - 3 bytes) as one Write Command; True when queued."""
        char = self._char
        if char is None:
            raise LinkError("BLE link is down")
        try:
            self._loop.run(char.write_value(bytes(buf), with_response=False), 10)
        except Exception as e:  # noqa: BLE001
            if self._conn is None:
                raise LinkError("BLE link went down while writing") from e
            raise
        return True

    def read_notification(self):
        """The oldest queued notification, or None."""
        try:
            return self._rx.popleft()
        except IndexError:
            return None

    def wait(self, ms):
        """Block up to ``ms`` ms for a notification or a disconnect."""
        if self._rx:
            return
        self._event.wait(ms / 1000.0)
        self._event.clear()

    def disconnect(self):
        """Drop the link (the HCI transport stays open for a reconnect)."""
        conn = self._conn
        if conn is not None:
            try:
                self._loop.run(conn.disconnect(), 5)
            except Exception:  # noqa: BLE001 - gone already
                pass
        self._drop()

    def close(self):
        """Disconnect and release the HCI transport and the loop thread."""
        self.disconnect()
        if self._loop is not None:
            if self._transport is not None:
                try:
                    self._loop.run(self._transport.close(), 5)
                except Exception:  # noqa: BLE001
                    pass
            self._loop.stop()
        self._loop = self._transport = self._device = None

    # --- on the loop -----------------------------------------------------------------------

    async def _open(self):
        self._transport = await open_transport(self.hci)
        dev = Device.with_hci("smpdfu", Address(_OWN_ADDRESS), self._transport.source, self._transport.sink)
        await dev.power_on()
        self._device = dev

    async def _connect(self, target, timeout):
        import asyncio

        if self._device is None:
            try:
                await asyncio.wait_for(self._open(), 10)
            except Exception as e:  # noqa: BLE001
                raise LinkError("cannot open BLE controller %r: %s" % (self.hci, e)) from e
        dev = self._device
        found = asyncio.get_running_loop().create_future()

        def on_adv(adv):
            if not found.done() and adv.is_connectable is not False and _matches(adv, target):
                found.set_result(adv.address)

        dev.on("advertisement", on_adv)
        try:
            await dev.start_scanning(filter_duplicates=False)
            try:
                addr = await asyncio.wait_for(found, timeout)
            except asyncio.TimeoutError:
                raise NotFound("no BLE device %s found within %d ms" % (
                    "advertising the SMP service" if target is None else repr(target), timeout * 1000))
        finally:
            dev.remove_listener("advertisement", on_adv)
            if dev.scanning:
                await dev.stop_scanning()
        prefs = ConnectionParametersPreferences(connection_interval_min=self.interval_ms,
                                                connection_interval_max=self.interval_ms)
        conn = await dev.connect(addr, connection_parameters_preferences={Phy.LE_1M: prefs},
                                 timeout=max(timeout, 5))
        conn.on("disconnection", lambda reason: self._on_disconnection(conn))
        self._conn = conn
        peer = Peer(conn)
        self.mtu = await peer.request_mtu(_MTU)
        await peer.discover_services([UUID(SMP_SERVICE_UUID)])
        chars = []
        for svc in peer.services:
            await svc.discover_characteristics()
            chars += svc.get_characteristics_by_uuid(UUID(SMP_CHAR_UUID))
        if not chars:
            await conn.disconnect()
            raise LinkError("%s has no SMP characteristic (service %s)" % (addr, SMP_SERVICE_UUID))
        self._char = chars[0]
        self._rx.clear()
        if self.pair:
            await conn.pair()
        try:
            await peer.subscribe(self._char, self._on_notification)
        except ATT_Error as e:
            if self.pair is not None or e.error_code not in _NEEDS_PAIRING:
                raise
            await conn.pair()  # the device wants an encrypted link (Zephyr BT_PERM_RW_ENCRYPT/AUTHEN)
            await peer.subscribe(self._char, self._on_notification)

    def _on_notification(self, value):
        self._rx.append(bytes(value))
        self._event.set()

    def _on_disconnection(self, conn):
        if self._conn is conn:
            self._drop()
        self._event.set()

    def _drop(self):
        self._conn = None
        self._char = None
