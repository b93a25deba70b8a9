"""A small SMP transport over any BLE adapter, for the adapter tests only.

It implements docs/architecture.md's transport contract with the least it
takes (writes split at MTU-3 for a reassembling server, responses rebuilt by
the SMP header's length), so the board adapters can be driven by the real
SMPClient and Updater. A dropped link is reconnected at the next send; a
request sent while the link is down is lost, which the client sees as a
timeout and retries (the same as a lost notification).
"""

from smpdfu.errors import LinkError
from smpdfu.header import HEADER_SIZE, unpack_header


class AdapterLink:
    def __init__(self, adapter, target, max_packet=2048, reconnect_ms=2000):
        self.adapter = adapter
        self.target = target
        self.max_packet = max_packet
        self.packet = memoryview(bytearray(max_packet))
        self.reconnect_ms = reconnect_ms
        self._rx = bytearray()
        self.reconnects = 0
        self.full = 0  # writes refused for a full controller queue

    def request_limit(self, buf_size):
        return min(buf_size, self.max_packet)

    def reconnect(self, timeout_ms):
        self.adapter.connect(self.target, timeout_ms)
        self.reconnects += 1
        self._rx = bytearray()

    def send(self, length):
        a = self.adapter
        if not a.connected:
            try:
                self.reconnect(self.reconnect_ms)
            except LinkError:
                return  # lost: the client times out and retries
        step = a.mtu - 3
        for i in range(0, length, step):
            piece = self.packet[i:min(i + step, length)]
            while True:
                try:
                    if a.write(piece):
                        break
                except LinkError:
                    return
                self.full += 1
                a.wait(1)

    def recv(self):
        a = self.adapter
        while True:
            rx = self._rx
            if len(rx) >= HEADER_SIZE:
                n = HEADER_SIZE + unpack_header(rx, 0)[3]
                if len(rx) >= n:
                    pkt = bytes(rx[:n])
                    del rx[:n]
                    return pkt
            data = a.read_notification()
            if data is None:
                return None
            rx += data

    def wait(self, ms):
        self.adapter.wait(ms)

    def reset(self):
        while self.adapter.read_notification() is not None:
            pass
        self._rx = bytearray()

    def close(self):
        self.adapter.disconnect()
