"""A minimal emulated nRF over BLE for the board-adapter tests: a Bumble
peripheral advertising Zephyr's SMP service, served by the portable server
(lib/smpdfu/server*.py) on the emulator's MCUboot flash model.

(The full emulated peripheral with its timing model is
``smpdfu_host.emulator.ble``; this one only has to be a correct SMP-over-GATT
server with a few faults, so the adapters can be tested on their own.)
"""

import asyncio
import os
import tempfile

from bumble.core import AdvertisingData, UUID
from bumble.device import AdvertisingType
from bumble.gatt import Characteristic, CharacteristicValue, Service

from smpdfu.ble_target import SMP_CHARACTERISTIC, SMP_SERVICE
from smpdfu.header import HEADER_SIZE, unpack_header
from smpdfu.server import SMPServer
from smpdfu.server_image import ImageGroup
from smpdfu.server_os import OSGroup
from smpdfu_host.emulator import bootloader
from smpdfu_host.emulator.flash import FlashFile

ZEPHYR_MTU = 498  # smp_svr overlay-bt.conf: CONFIG_BT_L2CAP_TX_MTU=498


class SMPPeripheral:
    """The SMP service on a Bumble Device of ``world``.

    ``reassembly``: the server collects a packet from several writes
    (CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY); without it one write must be
    one whole packet. ``buf_size``: CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE.
    """

    def __init__(self, world, name="smp-nrf", address="F0:F1:F2:F3:F4:F5", reassembly=True,
                 buf_size=2475, buf_count=4, slot_size=0x60000, reset_ms=100, boot_ms=300):
        self.world = world
        self.name = name
        self.address = address
        self.reassembly = reassembly
        self.buf_size = buf_size
        self.buf_count = buf_count
        self.reset_ms = reset_ms
        self.boot_ms = boot_ms
        self.events = []
        self.connections = 0
        self.dropped_writes = 0
        self._drop_notify = 0
        self._disconnect_after = 0
        self._chunks = 0
        self._conn = None
        self._rx = bytearray()
        fd, self._path = tempfile.mkstemp(prefix="smpdfu-bleflash-")
        os.close(fd)
        os.remove(self._path)
        self.flash = FlashFile(self._path, slot_size, 4096, 0)
        bootloader.install_factory(self.flash, bootloader.make_factory_image("1.0.0", 16 * 1024, slot_size))
        bootloader.boot(self.flash)
        self._new_server()
        self.device = world.new_device(name, address)
        self.device.gatt_server.max_mtu = ZEPHYR_MTU
        self.char = Characteristic(
            SMP_CHARACTERISTIC,
            Characteristic.Properties.WRITE_WITHOUT_RESPONSE | Characteristic.Properties.NOTIFY,
            Characteristic.Permissions.WRITEABLE,
            CharacteristicValue(write=self._on_write),
        )
        self.device.add_service(Service(SMP_SERVICE, [self.char]))
        self.device.on("connection", self._on_connection)
        self._queue = None
        world.run(self._start())

    # ------------------------------------------------------------ server

    def _new_server(self):
        self.server = SMPServer(self.buf_size, self.buf_count)
        self.images = ImageGroup(self.flash, listener=self._listener)
        self.server.register(OSGroup(self.images.running_version, self._request_reset))
        self.server.register(self.images)
        self._reset_pending = False

    def _listener(self, kind, info):
        self.events.append(kind)
        if kind == "upload-chunk":
            self._chunks += 1
            if self._disconnect_after and self._chunks >= self._disconnect_after:
                self._disconnect_after = 0
                self.world.loop.create_task(self._drop_link())

    def _request_reset(self):
        self._reset_pending = True

    def running_version(self):
        """The version in slot 0."""
        return self.images.running_version()

    def state(self):
        """The image state list (dicts)."""
        return self.images.state_list()

    # ------------------------------------------------------------ faults

    def disconnect_after_chunks(self, n):
        """Drop the link (upload state kept, as Zephyr keeps it in RAM) after ``n`` more chunks."""
        self._chunks = 0
        self._disconnect_after = n

    def drop_notifications(self, n=1):
        """Lose the next ``n`` response notifications on the air."""
        self._drop_notify = n

    # ------------------------------------------------------------ GATT

    async def _start(self):
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._work())
        await self._advertise()

    async def _advertise(self):
        # Zephyr: flags + the SMP service in the advertisement, the name in
        # the scan response. Bumble's virtual controller answers a scan with
        # the advertising data, so a short name goes there as well.
        name = (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode())
        ads = [(AdvertisingData.FLAGS, bytes([0x06])),
               (AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS, bytes(UUID(SMP_SERVICE)))]
        if len(self.name) <= 8:
            ads.append(name)
        adv = bytes(AdvertisingData(ads))
        rsp = bytes(AdvertisingData([name]))
        await self.device.start_advertising(
            advertising_type=AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE,
            advertising_data=adv, scan_response_data=rsp, advertising_interval_min=20,
            advertising_interval_max=20)

    def _on_connection(self, connection):
        self._conn = connection
        self.connections += 1
        self._rx = bytearray()
        connection.on("disconnection", lambda reason: self._on_disconnection(connection))

    def _on_disconnection(self, connection):
        if self._conn is connection:
            self._conn = None
            # Zephyr purges the link's queued requests; the upload state stays.
            while not self._queue.empty():
                self._queue.get_nowait()
            if not self._reset_pending:
                self.world.loop.create_task(self._advertise())

    def _on_write(self, connection, value):
        if not self.reassembly:
            if len(value) < HEADER_SIZE or HEADER_SIZE + unpack_header(value, 0)[3] != len(value):
                self.dropped_writes += 1  # not a whole packet: smp_bt drops it
                return
            self._queue.put_nowait((connection, bytes(value)))
            return
        rx = self._rx
        rx += value
        while len(rx) >= HEADER_SIZE:
            n = HEADER_SIZE + unpack_header(rx, 0)[3]
            if n > self.buf_size:
                self.dropped_writes += 1
                del rx[:]
                return
            if len(rx) < n:
                return
            self._queue.put_nowait((connection, bytes(rx[:n])))
            del rx[:n]

    async def _work(self):
        while True:
            connection, pkt = await self._queue.get()
            for rsp in self.server.process(pkt):
                await self._notify(connection, rsp)
            if self._reset_pending:
                await self._reset(connection)

    async def _notify(self, connection, rsp):
        if self._drop_notify:
            self._drop_notify -= 1
            return
        step = connection.att_mtu - 3
        for i in range(0, len(rsp), step):
            if self._conn is not connection:
                return
            await self.device.notify_subscriber(connection, self.char, rsp[i:i + step])

    async def _drop_link(self):
        if self._conn is not None:
            await self._conn.disconnect()

    async def _reset(self, connection):
        # CONFIG_MCUMGR_GRP_OS_RESET_MS after the answer, then MCUboot, then the app.
        await asyncio.sleep(self.reset_ms / 1000)
        self.events.append("reset")
        if self._conn is not None:
            await self._conn.disconnect()
        res = bootloader.boot(self.flash)
        self.events.append("boot:" + res["action"])
        self._new_server()
        await asyncio.sleep(self.boot_ms / 1000)
        await self._advertise()

    def close(self):
        """Remove the flash file."""
        self.flash.close()
        if os.path.exists(self._path):
            os.remove(self._path)
