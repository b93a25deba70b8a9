"""CircuitPython's ``_bleio`` (the central/GATT-client part) on a Bumble stack.

A test double, never deployed: with it installed as ``_bleio``, the real
``adafruit_ble`` from PyPI and ``smpdfu.ble_cp`` run unchanged on CPython
against a real BLE host stack (Bumble, a virtual controller on a LocalLink).
It follows CircuitPython's shared-bindings/_bleio API and the nRF port's
behaviour where it matters to a client:

- ``PacketBuffer`` keeps ``buffer_size`` incoming packets (the oldest is lost
  when full); ``write`` appends to a packet not yet sent when it fits, and
  otherwise blocks until the pending packet is gone (ports/nrf
  common-hal/_bleio/PacketBuffer.c), returns -1 when disconnected;
- the central asks for an ATT MTU of 512 when it connects;
- addresses are little-endian ``address_bytes``.

Usage: ``bumble_bleio.attach(world)``, then ``sys.modules["_bleio"] = bumble_bleio``
before ``adafruit_ble`` is imported. (``adafruit-blinka-bleio`` does the same
job on bleak for real adapters; this one targets the in-process Bumble link.)
"""

import asyncio
import collections
import queue
import threading
import time

from bumble import hci
from bumble.core import UUID as _BUUID
from bumble.device import ConnectionParametersPreferences

_CENTRAL_MTU = 512


class BluetoothError(Exception):
    """Catch-all BLE failure."""


class ConnectionError(BluetoothError):  # noqa: A001 - CircuitPython's name
    """A connection could not be made or was lost."""


class RoleError(BluetoothError):
    """The wrong role (central/peripheral) for the call."""


class SecurityError(BluetoothError):
    """Pairing or encryption failed."""


class Attribute:
    NO_ACCESS = 0
    OPEN = 1
    ENCRYPT_NO_MITM = 2
    ENCRYPT_WITH_MITM = 3
    LESC_ENCRYPT_WITH_MITM = 4
    SIGNED_NO_MITM = 5
    SIGNED_WITH_MITM = 6


class UUID:
    """A 16-bit (int) or 128-bit (string, or 16 little-endian bytes) UUID."""

    def __init__(self, value):
        if isinstance(value, int):
            self._b = value.to_bytes(2, "little")
        elif isinstance(value, str):
            self._b = bytes(_BUUID(value).to_bytes())  # little-endian
        else:
            b = bytes(value)
            if len(b) != 16:
                raise ValueError("UUID buffer must be 16 bytes")
            self._b = b

    @property
    def size(self):
        return 16 if len(self._b) == 2 else 128

    @property
    def uuid16(self):
        return int.from_bytes(self._b[:2] if len(self._b) == 2 else self._b[12:14], "little")

    @property
    def uuid128(self):
        if len(self._b) != 16:
            raise AttributeError("not a 128-bit UUID")
        return self._b

    def pack_into(self, buffer, offset=0):
        buffer[offset:offset + len(self._b)] = self._b

    def _bumble(self):
        return _BUUID.from_bytes(self._b)

    def __eq__(self, other):
        return isinstance(other, UUID) and self._b == other._b

    def __hash__(self):
        return hash(self._b)

    def __repr__(self):
        return "UUID(%s)" % self._bumble()


def _uuid_of(bumble_uuid):
    b = bumble_uuid.to_bytes()
    return UUID(int.from_bytes(b, "little")) if len(b) == 2 else UUID(b)


class Address:
    PUBLIC = 0
    RANDOM_STATIC = 1
    RANDOM_PRIVATE_RESOLVABLE = 2
    RANDOM_PRIVATE_NON_RESOLVABLE = 3

    def __init__(self, address, address_type):
        self.address_bytes = bytes(address)
        self.type = address_type

    def __eq__(self, other):
        return isinstance(other, Address) and (self.address_bytes, self.type) == (other.address_bytes, other.type)

    def __hash__(self):
        return hash((self.address_bytes, self.type))

    def __repr__(self):
        return "<Address %s>" % ":".join("%02x" % b for b in reversed(self.address_bytes))

    def _bumble(self):
        kind = hci.Address.PUBLIC_DEVICE_ADDRESS if self.type == self.PUBLIC else hci.Address.RANDOM_DEVICE_ADDRESS
        return hci.Address(self.address_bytes, kind)


def _ad_structures(data):
    i = 0
    while i < len(data):
        n = data[i]
        if n == 0:
            break
        yield data[i + 1:i + 1 + n]
        i += 1 + n


class ScanEntry:
    """One advertisement or scan response heard."""

    def __init__(self, address, advertisement_bytes, rssi, connectable, scan_response):
        self.address = address
        self.advertisement_bytes = advertisement_bytes
        self.rssi = rssi
        self.connectable = connectable
        self.scan_response = scan_response

    def matches(self, prefixes, *, match_all=True):
        """Whether the AD structures start with any (or all) of ``prefixes``
        (each a length byte then the prefix bytes)."""
        prefixes = bytes(prefixes)
        if not prefixes:
            return True
        wanted = []
        i = 0
        while i < len(prefixes):
            n = prefixes[i]
            wanted.append(prefixes[i + 1:i + 1 + n])
            i += 1 + n
        structs = list(_ad_structures(self.advertisement_bytes))
        hits = [any(s.startswith(p) for s in structs) for p in wanted]
        return all(hits) if match_all else any(hits)


class _ScanResults:
    # The iterator start_scan returns: blocks until an entry or the scan's end.
    def __init__(self, adapter, deadline):
        self._adapter = adapter
        self._deadline = deadline

    def __iter__(self):
        return self

    def __next__(self):
        a = self._adapter
        while True:
            left = None if self._deadline is None else self._deadline - time.monotonic()
            if not a._scanning or (left is not None and left <= 0):
                a.stop_scan()
                raise StopIteration
            try:
                return a._entries.get(timeout=min(left, 0.05) if left is not None else 0.05)
            except queue.Empty:
                continue


class Adapter:
    """``_bleio.adapter``: the board's radio."""

    def __init__(self, world, device):
        self._world = world
        self._device = device
        self._entries = queue.Queue()
        self._scanning = False
        self._prefixes = b""
        self._connections = []
        self.enabled = True
        self.name = device.name
        device.on("advertisement", self._on_adv)

    @property
    def address(self):
        a = self._device.random_address
        return Address(bytes(a), Address.RANDOM_STATIC)

    def _on_adv(self, adv):
        if not self._scanning:
            return
        kind = Address.PUBLIC if adv.address.address_type in (0, 2) else Address.RANDOM_STATIC
        entry = ScanEntry(Address(bytes(adv.address), kind), bytes(adv.data_bytes), adv.rssi,
                          adv.is_connectable, adv.is_scan_response)
        if entry.matches(self._prefixes, match_all=False):
            self._entries.put(entry)

    def start_scan(self, prefixes=b"", *, buffer_size=512, extended=False, timeout=None, interval=0.1,
                   window=0.1, minimum_rssi=-80, active=True):
        if self._scanning:
            raise BluetoothError("Scan already in progress")
        self._prefixes = bytes(prefixes)
        self._entries = queue.Queue()
        self._scanning = True
        self._world.run(self._device.start_scanning(active=active, scan_interval=interval * 1000,
                                                    scan_window=window * 1000, filter_duplicates=False))
        return _ScanResults(self, None if timeout is None else time.monotonic() + timeout)

    def stop_scan(self):
        if not self._scanning:
            return
        self._scanning = False
        if self._device.is_scanning:
            self._world.run(self._device.stop_scanning())

    @property
    def connected(self):
        return any(c.connected for c in self._connections)

    @property
    def connections(self):
        self._connections = [c for c in self._connections if c.connected]
        return tuple(self._connections)

    def connect(self, address, *, timeout):
        prefs = {hci.Phy.LE_1M: ConnectionParametersPreferences(connection_interval_min=7.5,
                                                                connection_interval_max=15)}

        async def run():
            conn = await self._device.connect(address._bumble(), connection_parameters_preferences=prefs,
                                              timeout=timeout)
            await conn.gatt_client.request_mtu(_CENTRAL_MTU)
            return conn

        try:
            conn = self._world.run(run(), timeout + 5)
        except Exception as e:  # noqa: BLE001 - every failure surfaces as CircuitPython's error
            raise BluetoothError("Failed to connect: %s" % (e or type(e).__name__)) from e
        c = Connection(self._world, conn)
        self._connections.append(c)
        return c


class Connection:
    """A link to a peer (``_bleio.Connection``)."""

    def __init__(self, world, conn):
        self._world = world
        self._conn = conn
        self._up = True
        self.paired = False
        conn.on("disconnection", self._on_disconnection)

    def _on_disconnection(self, reason):
        self._up = False

    @property
    def connected(self):
        return self._up

    @property
    def max_packet_length(self):
        return self._conn.att_mtu - 3

    @property
    def connection_interval(self):
        return self._conn.parameters.connection_interval

    def pair(self, *, bond=True):
        try:
            self._world.run(self._conn.pair())
        except Exception as e:  # noqa: BLE001
            raise SecurityError(str(e)) from e
        self.paired = True

    def disconnect(self):
        if self._up:
            try:
                self._world.run(self._conn.disconnect())
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._up = False

    def discover_remote_services(self, service_uuids_whitelist=None):
        gc = self._conn.gatt_client

        async def run():
            uuids = [u._bumble() for u in service_uuids_whitelist or ()]
            out = []
            for s in await gc.discover_services(uuids):
                svc = Service(_uuid_of(s.uuid), _remote=self)
                chars = []
                for c in await gc.discover_characteristics([], s):
                    descs = await gc.discover_descriptors(c)
                    cccd = [d.handle for d in descs if d.type == _BUUID.from_16_bits(0x2902)]
                    chars.append(Characteristic(_remote=(self, svc, c, cccd[0] if cccd else None)))
                svc.characteristics = tuple(chars)
                out.append(svc)
            return out

        if not self._up:
            raise ConnectionError("Connection has been disconnected and can no longer be used.")
        return tuple(self._world.run(run()))


class Service:
    """A GATT service; only remote ones (discovered) are supported here."""

    def __init__(self, uuid, *, secondary=False, _remote=None):
        self.uuid = uuid
        self.secondary = secondary
        self.remote = _remote is not None
        self.connection = _remote
        self.characteristics = ()


class Characteristic:
    BROADCAST = 0x01
    READ = 0x02
    WRITE_NO_RESPONSE = 0x04
    WRITE = 0x08
    NOTIFY = 0x10
    INDICATE = 0x20

    def __init__(self, _remote=None):
        if _remote is None:
            raise NotImplementedError("only remote characteristics are modelled")
        self.connection, self.service, self._proxy, self._cccd = _remote
        self.uuid = _uuid_of(self._proxy.uuid)
        self.properties = int(self._proxy.properties)
        self.handle = self._proxy.handle

    @staticmethod
    def add_to_service(*args, **kw):
        raise NotImplementedError("local services are not modelled by this double")

    @property
    def value(self):
        return bytes(self.connection._world.run(self._proxy.read_value()))

    @value.setter
    def value(self, data):
        self.connection._world.run(self._proxy.write_value(bytes(data), with_response=True))

    def set_cccd(self, *, notify=False, indicate=False):
        if self._cccd is None:
            raise BluetoothError("no CCCD")
        v = (1 if notify else 0) | (2 if indicate else 0)
        try:
            self.connection._world.run(
                self.connection._conn.gatt_client.write_value(self._cccd, bytes([v, 0]), with_response=True))
        except Exception as e:  # noqa: BLE001 - an ATT error (e.g. insufficient encryption)
            raise BluetoothError("CCCD write failed: %s" % e) from e


class CharacteristicBuffer:
    def __init__(self, *args, **kw):
        raise NotImplementedError("not modelled by this double")


class Descriptor:
    def __init__(self, *args, **kw):
        raise NotImplementedError("not modelled by this double")


class PacketBuffer:
    """Whole packets to and from a characteristic (see the module doc for the nRF behaviour kept)."""

    def __init__(self, characteristic, *, buffer_size, max_packet_size=None):
        ch = characteristic
        self._ch = ch
        self._conn = ch.connection
        self._max = max_packet_size or 512
        self._in = collections.deque(maxlen=buffer_size)
        self.lost = 0  # incoming packets pushed out of a full ring
        self._lock = threading.Condition()
        self._pending = bytearray()
        self._queued = False
        self.sent = []  # Write Commands as they went out (for tests)
        if ch.properties & (Characteristic.NOTIFY | Characteristic.INDICATE):
            subs = ch.connection._conn.gatt_client.notification_subscribers
            subs.setdefault(ch.handle, set()).add(self._on_notify)
            ch.set_cccd(notify=bool(ch.properties & Characteristic.NOTIFY),
                        indicate=not ch.properties & Characteristic.NOTIFY)

    def _on_notify(self, value):
        if len(self._in) == self._in.maxlen:
            self.lost += 1
        self._in.append(bytes(value))

    @property
    def incoming_packet_length(self):
        return self._conn.max_packet_length if self._conn.connected else -1

    @property
    def outgoing_packet_length(self):
        return min(self._conn.max_packet_length, self._max) if self._conn.connected else -1

    def readinto(self, buf):
        try:
            pkt = self._in.popleft()
        except IndexError:
            return 0
        if len(pkt) > len(buf):
            return len(buf) - len(pkt)
        buf[:len(pkt)] = pkt
        return len(pkt)

    def write(self, data, *, header=None):
        if not self._conn.connected:
            return -1
        out = self.outgoing_packet_length
        header = bytes(header or b"")
        if len(data) + len(header) > out:
            raise ValueError("Total data to write is larger than outgoing_packet_length")
        with self._lock:
            if len(data) + len(self._pending) > out:
                while self._pending and self._conn.connected:
                    self._lock.wait(0.01)
            if not self._conn.connected:
                return -1
            n = len(data)
            if not self._pending:
                self._pending += header
                n += len(header)
            self._pending += bytes(data)
            if not self._queued:
                self._queue_next()
        return n

    def _queue_next(self):
        # Under the lock: hand the pending packet to the "controller".
        pkt = bytes(self._pending)
        self._pending = bytearray()
        self._queued = True
        self.sent.append(pkt)
        self._conn._world.call(self._send, pkt)

    def _send(self, pkt):
        async def run():
            # A packet still queued when its link died is dropped, as the nRF's
            # stack does: sent now, it would go out by connection handle, and
            # a new link may have been given the same handle.
            if self._conn.connected:
                try:
                    await self._conn._conn.gatt_client.write_value(self._ch.handle, pkt, with_response=False)
                except Exception:  # noqa: BLE001 - a link that went down: the packet is lost, as on air
                    pass
            with self._lock:
                self._queued = False
                if self._pending:
                    self._queue_next()
                self._lock.notify_all()

        asyncio.ensure_future(run())

    def flush(self):
        with self._lock:
            while (self._pending or self._queued) and self._conn.connected:
                self._lock.wait(0.01)

    def deinit(self):
        subs = self._conn._conn.gatt_client.notification_subscribers
        subs.get(self._ch.handle, set()).discard(self._on_notify)


adapter = None


def attach(world, hci=None, address="D0:D1:D2:D3:D4:D5"):
    """Give this module a board radio on ``world`` (its controller at transport
    spec ``hci``), as ``_bleio.adapter``."""
    global adapter
    adapter = Adapter(world, world.new_device("cpboard", address, hci))
    return adapter
