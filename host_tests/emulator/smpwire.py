"""A minimal SMP serial client for emulator tests (our wire layer + pyserial).

Independent of the project's client so emulator tests do not depend on it.
"""

import hashlib
import time

import serial
from _portable import dumps

from smpdfu import cbor
from smpdfu.errors import FrameError
from smpdfu.framing import FrameDecoder, FrameEncoder
from smpdfu.header import pack_header
from smpdfu.server import unpack_header

READ, WRITE = 0, 2


def packet(op, group, cmd, body, seq=0, version=1):
    b = dumps(body)
    p = bytearray(8 + len(b))
    pack_header(p, 0, op, len(b), group, seq, cmd, version)
    p[8:] = b
    return bytes(p)


class WireClient:
    """``request()`` returns ``(header_tuple, body_dict)`` or None on timeout."""

    def __init__(self, path, baud=1000000):
        self.ser = serial.Serial(path, baud, timeout=0.02)
        self.dec = FrameDecoder(max_packet=4096, max_queue=64)
        self.enc = FrameEncoder(4096)
        self.seq = 0
        self.raw = bytearray()  # everything received

    def close(self):
        self.ser.close()

    def send_packet(self, pkt):
        self.ser.write(bytes(self.enc.encode(packet=pkt)))

    def send_raw(self, data):
        self.ser.write(data)

    def framed(self, pkt):
        return bytes(self.enc.encode(packet=pkt))

    def read_packet(self, timeout=2.0):
        end = time.monotonic() + timeout
        while True:
            try:
                p = self.dec.next()
            except FrameError:
                p = None
            if p is not None:
                return unpack_header(p), cbor.loads(p[8:])
            if time.monotonic() > end:
                return None
            d = self.ser.read(self.ser.in_waiting or 1)
            if d:
                self.raw += d
                self.dec.feed(d)

    def request(self, op, group, cmd, body=None, version=1, timeout=2.0):
        self.seq = (self.seq + 1) & 0xFF
        self.send_packet(packet(op, group, cmd, body or {}, self.seq, version))
        while True:
            r = self.read_packet(timeout)
            if r is None or r[0][5] == self.seq:
                return r

    def echo(self, text="hi", **kw):
        r = self.request(READ, 0, 0, {"d": text}, **kw)
        return None if r is None else r[1].get("r")

    def state(self):
        return self.request(READ, 1, 0)[1]["images"]

    def upload(self, image, chunk=240, sha=True, timeout=30.0):
        """Upload ``image`` bytes; returns the last response body."""
        off = 0
        rsp = None
        digest = hashlib.sha256(image).digest()
        while off < len(image):
            body = {"off": off, "data": image[off:off + chunk]}
            if off == 0:
                body["len"] = len(image)
                if sha:
                    body["sha"] = digest
            r = self.request(WRITE, 1, 1, body, timeout=timeout)
            assert r is not None, "no response at offset %d" % off
            rsp = r[1]
            assert "err" not in rsp and not rsp.get("rc"), rsp
            off = rsp["off"]
        return rsp

    def test(self, h, confirm=False):
        return self.request(WRITE, 1, 0, {"hash": h, "confirm": confirm})[1]

    def confirm(self):
        return self.request(WRITE, 1, 0, {"confirm": True})[1]

    def reset(self):
        return self.request(WRITE, 0, 5, {})[1]

    def wait_up(self, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.echo("up", timeout=0.3) == "up":
                return True
        return False
