"""The emulated nRF as a BLE peripheral: Zephyr's SMP Bluetooth transport on Bumble.

The same device as the serial emulator (portable SMP server, MCUboot flash
model, flash timing, reset and boot, events and faults: see :mod:`.device`),
reached over GATT instead of a pty:

- a Bumble device named ``name`` advertising the SMP service (the UUID in
  the advertisement, the name in the scan response, as Zephyr's smp_svr);
- the SMP characteristic (write without response + notify), as
  ``smp_bt.c``: each write is one whole SMP packet, or with ``reassembly``
  (``CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY``) fragments are collected up to the
  header's length (a fragment longer than the remainder drops the packet,
  ``smp_reassembly.c`` -EOVERFLOW); a packet needs one of the ``buf_count``
  net_bufs of ``buf_size`` bytes or is dropped; responses go out as
  notifications of ATT_MTU - 3 bytes;
- a disconnect purges the queued requests; the upload state survives a
  reconnect (it is in RAM, not per link) but not a reset; a reset
  disconnects, boots and advertises again;
- air time from :class:`.ble_timing.LinkTiming` (PHY, connection interval,
  data length, PDUs per connection event): Bumble's virtual controller has
  no timing, so writes reach the server and notifications leave it when
  they would on air.

Another process reaches it through a relay controller on the same virtual
link: :attr:`BLEEmulator.hci` is the Bumble transport spec to pass to
``--hci`` (``tcp-client:127.0.0.1:PORT``). With ``hci=SPEC`` the peripheral
runs on that controller instead (e.g. a USB dongle: then the air is real
and the timing model is off).
"""

import queue
import socket
import threading
import time

from bumble.controller import Controller
from bumble.core import AdvertisingData, UUID
from bumble.device import Device
from bumble.gatt import (GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR, Characteristic,
                         CharacteristicValue, Descriptor, Service)
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport import open_transport
from bumble.transport.common import AsyncPipeSink
from bumble.transport.tcp_server import open_tcp_server_transport_with_socket

from smpdfu.header import HEADER_SIZE

from ..bumble_loop import LoopThread
from .ble_timing import LinkTiming
from .device import Emulator, EmulatorConfig
from .uart import FrameAssembler, LineBuffers, NetBufPool

SMP_SERVICE_UUID = "8D53DC1D-1DB7-4CD3-868B-8A527460AA84"
SMP_CHAR_UUID = "DA2E7828-FBCE-4E01-AE9E-261174997C48"
_ADV_MAX = 31  # legacy advertising data
_ADV_INTERVAL_MS = 100  # BT_GAP_ADV_FAST_INT_MIN_2, what BT_LE_ADV_CONN uses
_ATT_WRITE_OVERHEAD = 3  # Write Command / Handle Value Notification: opcode + handle


class BLEConfig(EmulatorConfig):
    """:class:`.device.EmulatorConfig` plus the BLE link (defaults: docs/emulator.md)."""

    defaults = dict(
        EmulatorConfig.defaults,
        name="nrf-smp",            # advertised name (fits the advertisement with the UUID)
        address="F0:F1:F2:F3:F4:F5",  # static random address of the peripheral
        buf_size=2475,             # smp_svr overlay-bt.conf: MCUMGR_TRANSPORT_NETBUF_SIZE
        mtu=498,                   # smp_svr overlay-bt.conf: BT_L2CAP_TX_MTU
        reassembly=True,           # smp_svr overlay-bt.conf: MCUMGR_TRANSPORT_BT_REASSEMBLY
        phy=2,                     # LE 2M
        interval_ms=7.5,           # CONN_PARAM_CONTROL asks 7.5-11.25 ms during SMP traffic
        data_length=251,           # BT_CTLR_DATA_LENGTH_MAX 251
        pdus_per_event=0,          # 0: as many as fit in the interval
        timing=True,               # pace the link by air time
        encrypt=False,             # MCUMGR_TRANSPORT_BT_PERM_RW_ENCRYPT: writes and CCC need encryption
    )


class BLEEmulator(Emulator):
    """An emulated nRF52840 running Zephyr's smp_svr over BLE (see the module docs).

    ``hci``: a Bumble transport spec for the peripheral's own controller;
    None (default) builds a virtual link with a relay controller for other
    processes (:attr:`hci`). Faults as on serial, per BLE packet:
    :meth:`drop_rx_lines` drops whole writes, :meth:`corrupt_rx_lines` flips
    a bit in the last byte of a write, :meth:`drop_tx_lines` loses single
    notifications; plus :meth:`disconnect` and :meth:`disconnect_after_chunks`.
    """

    def __init__(self, config=None, on_event=None, hci=None, **kw):
        if config is None:
            config = BLEConfig(**kw)
            kw = {}
        Emulator.__init__(self, config, on_event, **kw)
        self._own_hci = hci
        self.hci = None
        self.conn = None
        self._link_gen = 0  # bumped on every disconnect: older writes are dropped
        self._partial = None  # reassembly: the packet being collected
        self._want = 0
        self._air = queue.Queue()  # (due time, link generation, bytes) in air order
        self._disconnect_after = 0
        self._advertising = False
        self._quiet = True  # no advertising while down
        self._loop = None
        c = self.cfg
        self.timing = LinkTiming(c.phy, c.interval_ms, c.data_length, c.pdus_per_event) if c.timing else None

    # --- lifecycle ---------------------------------------------------------------

    def start(self):
        """Create the flash, bring the BLE stack up, boot and advertise. Returns self."""
        c = self.cfg
        self._open_flash()
        # The serial receive path is not used; _boot resets it like on serial.
        self.lines = LineBuffers(c.line_bufs, c.line_buf_size)
        self.pool = NetBufPool(c.buf_count)
        self.asm = FrameAssembler(c.buf_size, self.pool)
        self._loop = LoopThread("emu-ble")
        self._loop.run(self._power_on(), 30)
        self.running = True
        self._boot("power-on")
        for fn in (self._air_loop, self._worker_loop):
            t = threading.Thread(target=fn, daemon=True, name="emu" + fn.__name__)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        """Disconnect, stop the threads, the BLE stack and close the flash."""
        if not self.running:
            return
        self.running = False
        try:
            self._loop.run(self._go_quiet(), 5)
        except Exception:  # noqa: BLE001 - stopping anyway
            pass
        for t in self._threads:
            t.join(5)
        self._loop.run(self._close_transports(), 5)
        self._loop.stop()
        self._close_flash()

    async def _power_on(self):
        c = self.cfg
        self._transports = []
        if self._own_hci:
            t = await open_transport(self._own_hci)
            self._transports.append(t)
            self.device = Device.with_hci(c.name, Address(c.address), t.source, t.sink)
        else:
            link = LocalLink()
            ctrl = Controller("nrf", link=link, public_address=c.address)
            self.device = Device(name=c.name, address=Address(c.address), host=Host(ctrl, AsyncPipeSink(ctrl)))
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            relay = await open_tcp_server_transport_with_socket(sock)
            self._transports.append(relay)
            self._relay = Controller("central", host_source=relay.source, host_sink=relay.sink, link=link)
            self._relay_sink = relay.sink
            self.hci = "tcp-client:127.0.0.1:%d" % port
        self.device.gatt_server.max_mtu = c.mtu
        perm = Characteristic.WRITEABLE
        if c.encrypt:
            perm |= Characteristic.WRITE_REQUIRES_ENCRYPTION
        self.char = Characteristic(
            UUID(SMP_CHAR_UUID),
            Characteristic.Properties.WRITE_WITHOUT_RESPONSE | Characteristic.Properties.NOTIFY,
            perm, CharacteristicValue(write=self._on_write))
        if c.encrypt:
            # Zephyr's SMP_BT_PERM covers the CCC too: subscribing needs encryption
            self.char.descriptors = [Descriptor(
                GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
                Descriptor.READABLE | Descriptor.WRITEABLE | Descriptor.READ_REQUIRES_ENCRYPTION
                | Descriptor.WRITE_REQUIRES_ENCRYPTION,
                self.device.gatt_server.make_descriptor_value(self.char))]
        self.device.add_service(Service(UUID(SMP_SERVICE_UUID), [self.char]))
        self.device.on("connection", self._on_connection)
        await self.device.power_on()
        if not self._own_hci:
            self._watch_relay()

    def _watch_relay(self):
        # A central process that died keeps its link up in the shared virtual
        # controller: drop the connection when its HCI socket is gone.
        if self.conn is not None and self._relay_sink.transport is None:
            self.disconnect()
        self._loop.loop.call_later(0.2, self._watch_relay)

    async def _close_transports(self):
        for t in self._transports:
            try:
                await t.close()
            except Exception:  # noqa: BLE001
                pass

    # --- advertising and connections -----------------------------------------------

    async def _advertise(self):
        if self._advertising:
            return
        c = self.cfg
        ads = [(AdvertisingData.FLAGS, bytes([0x06])),
               (AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS, bytes(UUID(SMP_SERVICE_UUID)))]
        name = (AdvertisingData.COMPLETE_LOCAL_NAME, c.name.encode())
        scan_rsp = bytes(AdvertisingData([name]))
        adv = bytes(AdvertisingData(ads + [name]))
        if len(adv) > _ADV_MAX:
            # Zephyr's smp_svr: the name only in the scan response. (Bumble's
            # virtual controller never sends scan responses: keep names short.)
            adv = bytes(AdvertisingData(ads))
        await self.device.start_advertising(advertising_data=adv, scan_response_data=scan_rsp,
                                            advertising_interval_min=_ADV_INTERVAL_MS,
                                            advertising_interval_max=_ADV_INTERVAL_MS)
        self._advertising = True

    async def _go_quiet(self):
        # Stop advertising, then drop the link: a reset (nothing restarts it).
        self._quiet = True
        if self._advertising:
            self._advertising = False
            await self.device.stop_advertising()
        conn = self.conn
        if conn is not None:
            try:
                await conn.disconnect()
            except Exception:  # noqa: BLE001 - already gone
                pass

    def _on_connection(self, conn):
        self.conn = conn
        self._advertising = False  # a connection ends advertising
        if self.timing is not None:
            self.timing.reset()
        self._emit("ble-connect", peer=str(conn.peer_address))
        conn.on("disconnection", lambda reason: self._on_disconnection(conn, reason))

    def _on_disconnection(self, conn, reason):
        if self.conn is conn:
            self.conn = None
        self._purge()
        self._emit("ble-disconnect", reason=reason)
        if not self._quiet and self.running:
            # smp_svr advertises again once the link is gone
            self._loop.loop.create_task(self._advertise())

    def _purge(self):
        # smp_bt: a disconnect drops this link's queued requests and partial packet.
        with self._rx_lock:
            self._link_gen += 1
            if self._partial is not None:
                self._partial = None
                self.pool.free()
            while True:
                try:
                    self._q.get_nowait()
                except queue.Empty:
                    break
                self.pool.free()

    # --- receive: writes -> air time -> reassembly -> server queue -----------------------

    def _on_write(self, conn, value):
        # On the Bumble loop: note when this write would have arrived on air.
        if conn is not self.conn:
            # Data of a link already gone (the virtual link may deliver it
            # after the disconnection event): Zephyr never sees it.
            self.stats["rx_writes_after_disconnect"] += 1
            return
        due = 0.0
        if self.timing is not None:
            due = self.timing.reserve("up", len(value) + _ATT_WRITE_OVERHEAD)
        self._air.put((due, self._link_gen, bytes(value)))

    def _air_loop(self):
        while self.running:
            try:
                due, gen, data = self._air.get(timeout=0.05)
            except queue.Empty:
                continue
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            with self._rx_lock:
                if gen == self._link_gen and not self.down:
                    self._received(data)

    def _received(self, data):
        self.stats["rx_bytes"] += len(data)
        if self._faults["drop_rx"] > 0:
            self._faults["drop_rx"] -= 1
            self.stats["rx_writes_dropped_fault"] += 1
            return
        if self._faults["corrupt_rx"] > 0 and len(data) > HEADER_SIZE:
            # a bit flipped past the header: only the image data notices it
            self._faults["corrupt_rx"] -= 1
            self.stats["rx_writes_corrupted_fault"] += 1
            data = bytearray(data)
            data[-1] ^= 0x01
        c = self.cfg
        if self._partial is None:
            if len(data) < HEADER_SIZE:
                self.stats["rx_writes_too_short"] += 1
                return
            want = HEADER_SIZE + ((data[2] << 8) | data[3])
            if want > c.buf_size or (not c.reassembly and want != len(data)):
                self.stats["rx_packets_bad_length"] += 1
                return
            if not self.pool.alloc():
                self.stats["rx_packets_no_netbuf"] += 1
                return
            self._partial = bytearray()
            self._want = want
        if len(self._partial) + len(data) > self._want:
            self.stats["rx_packets_overflow"] += 1  # -EOVERFLOW: the packet is dropped
            self._partial = None
            self.pool.free()
            return
        self._partial += data
        if len(self._partial) == self._want:
            pkt = bytes(self._partial)
            self._partial = None
            self.stats["rx_packets"] += 1
            self._q.put((pkt, self.epoch))

    # --- send: responses -> notifications --------------------------------------------

    def _send_packet(self, pkt):
        if self._delay_ms and self._faults["delay"] > 0:
            self._faults["delay"] -= 1
            time.sleep(self._delay_ms / 1000.0)
        conn = self.conn
        if conn is None:
            self.stats["tx_packets_no_link"] += 1
            return
        step = conn.att_mtu - _ATT_WRITE_OVERHEAD
        mv = memoryview(pkt)
        for i in range(0, len(pkt), step):
            part = bytes(mv[i:i + step])
            if self.timing is not None:
                wait = self.timing.reserve("down", len(part) + _ATT_WRITE_OVERHEAD) - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            if self._faults["drop_tx"] > 0:
                self._faults["drop_tx"] -= 1
                self.stats["tx_notifications_dropped_fault"] += 1
                continue
            try:
                self._loop.run(self.device.notify_subscriber(conn, self.char, part), 5)
            except Exception:  # noqa: BLE001 - the link went down meanwhile: lost, as on air
                self.stats["tx_notifications_failed"] += 1
                return
            self.stats["tx_bytes"] += len(part)
        self.stats["tx_packets"] += 1

    def _tx(self, data, lines=False):
        pass  # no console over BLE (the banner of a boot goes nowhere)

    # --- boot / reset -----------------------------------------------------------------

    def _boot(self, reason):
        if self._loop is not None and self.running:
            self._loop.run(self._go_quiet(), 10)
        self._purge()
        Emulator._boot(self, reason)
        if not self.bricked and self._loop is not None:
            self._quiet = False
            self._loop.run(self._advertise(), 10)

    # --- faults ------------------------------------------------------------------------

    def disconnect(self):
        """Drop the link now (the peripheral disconnects; it keeps advertising)."""
        conn = self.conn
        if conn is not None:
            self._loop.call(lambda: self._loop.loop.create_task(conn.disconnect()))

    def disconnect_after_chunks(self, n):
        """Drop the link after the ``n``-th upload chunk from now is written."""
        self._disconnect_after = n

    def _image_listener(self, kind, info):
        Emulator._image_listener(self, kind, info)
        if kind == "upload-chunk" and self._disconnect_after:
            self._disconnect_after -= 1
            if not self._disconnect_after:
                self.stats["disconnects_fault"] += 1
                self.disconnect()

    def counters(self):
        """Link and server counters."""
        d = dict(self.stats)
        d.update(netbuf_failures=self.pool.failures, requests=self.server.requests)
        return d

    def command(self, line):
        """As :meth:`.device.Emulator.command`, plus ``disconnect`` and ``disconnect_after_chunks N``."""
        parts = line.split()
        if parts == ["disconnect"]:
            self.disconnect()
            return "ok"
        if len(parts) == 2 and parts[0] == "disconnect_after_chunks" and parts[1].isdigit():
            self.disconnect_after_chunks(int(parts[1]))
            return "ok"
        return Emulator.command(self, line)
