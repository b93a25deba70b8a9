"""A fake BLE adapter (the adapter contract of smpdfu.ble) around SMPDevice.

Portable (CPython and MicroPython), no threads: a write that completes an
SMP packet is answered at once, the answer queued as notifications of
MTU - 3 bytes. It checks the rules of Zephyr's smp_bt on every write (at
most MTU - 3 bytes; without reassembly one write is one whole packet) and
has knobs: ``full`` (the next N writes find the controller queue full),
``drop_notifications`` (lose the next N), ``names`` (what a scan finds).
"""

from smpdfu.ble import NotFound
from smpdfu.framing import FrameDecoder
from smpdfu.header import HEADER_SIZE

from smpdev import SMPDevice


class FakeBLEAdapter:
    def __init__(self, dev=None, mtu=247, reassembly=True, names=("nrf",), address="F0:F1:F2:F3:F4:F5"):
        if dev is None:
            dev = SMPDevice(buf_size=2475 if reassembly else 384)
        dev.frame_overhead = 0
        self.dev = dev
        self.mtu = mtu
        self.reassembly = reassembly
        self.names = names
        self.address = address
        self.connected = False
        self.connects = []  # targets of connect() calls
        self.write_sizes = []
        self.bad_writes = 0  # writes Zephyr would drop (a piece of a packet without reassembly)
        self.full = 0
        self.drop_notifications = 0
        self._pkt = bytearray()
        self._want = 0
        self._dec = FrameDecoder(max_packet=4096, max_queue=64)
        self._rx = []

    def connect(self, target, timeout_ms):
        self.connects.append(target)
        if target is not None and target not in self.names and target != self.address:
            raise NotFound("no BLE device %r (fake)" % target)
        self.connected = True
        self._pkt = bytearray()
        self._want = 0

    def disconnect(self):
        self.connected = False
        self._rx = []

    def write(self, buf):
        assert self.connected, "write on a link that is down"
        assert len(buf) <= self.mtu - 3, "write of %d bytes, MTU %d" % (len(buf), self.mtu)
        if self.full:
            self.full -= 1
            return False
        self.write_sizes.append(len(buf))
        if not self._want:
            self._want = HEADER_SIZE + ((buf[2] << 8) | buf[3])
            if not self.reassembly and self._want != len(buf):
                self.bad_writes += 1
                self._want = 0
                return True
        self._pkt.extend(buf)
        if len(self._pkt) >= self._want:
            pkt = bytes(self._pkt)
            self._pkt = bytearray()
            self._want = 0
            self.dev._handle(pkt)
            self._answers()
        return True

    def _answers(self):
        data = self.dev.read_available()
        if data:
            self._dec.feed(data)
        step = self.mtu - 3
        while True:
            pkt = self._dec.next()
            if pkt is None:
                return
            for i in range(0, len(pkt), step):
                if self.drop_notifications:
                    self.drop_notifications -= 1
                    continue
                self._rx.append(bytes(pkt[i:i + step]))

    def read_notification(self):
        if self._rx:
            return self._rx.pop(0)
        return None

    def wait(self, ms):
        pass
