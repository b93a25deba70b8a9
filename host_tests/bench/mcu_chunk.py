"""Runs on the MicroPython unix port (bench_mcu.py starts it): the client's CPU per chunk.

    micropython mcu_chunk.py MODE BUF_SIZE [CHUNKS]

MODE: ``native`` (what compat picks: viper where the emitter exists) or
``python`` (native code masked: the portable loops CircuitPython runs). Uploads CHUNKS chunks of a generated image to a device that
skims the frames; the device's and the image stream's time and allocations are
metered and subtracted (and so is the metering's own cost per call), so
what is left is the client's own. Prints one line:
``us_chunk alloc_chunk crc_pass_us data_per_chunk``, the last being one
pure-Python table CRC-16 pass over a whole packet of BUF_SIZE bytes, measured
in the same run.
"""

import gc
import sys
import time


class _NoNative:
    pass


MODE = sys.argv[1]
BUF = int(sys.argv[2])
CHUNKS = int(sys.argv[3]) if len(sys.argv) > 3 else 200
if MODE != "native":
    sys.modules["smpdfu.native"] = _NoNative()
import smpdfu.compat as compat  # noqa: E402

from smpdfu.client import SMPClient  # noqa: E402
from smpdfu.crc16 import crc16  # noqa: E402
from smpdfu.transport import SerialTransport  # noqa: E402

from smpdev import SMPDevice  # noqa: E402
from streams import PatternStream  # noqa: E402

_acc = [0, 0, 0]  # device/stream microseconds, bytes, metered calls


def _meter(fn, *args):
    # Two passes: gc.mem_alloc() walks the whole heap, so timing and counting
    # bytes in the same pass would bill that walk to the client.
    if _COUNT[0]:
        a = gc.mem_alloc()
        r = fn(*args)
        _acc[1] += gc.mem_alloc() - a
        return r
    t = time.ticks_us()
    r = fn(*args)
    _acc[0] += time.ticks_diff(time.ticks_us(), t)
    _acc[2] += 1
    return r


_COUNT = [False]


def _noop(*args):
    return None


def _meter_overhead():
    # What _meter adds around a call (the harness's cost, not the client's):
    # a real UART's read/write is one C call, like calling _noop directly.
    n = 2000
    _acc[0] = 0
    t = time.ticks_us()
    for _ in range(n):
        _meter(_noop, 1)
    metered = time.ticks_diff(time.ticks_us(), t) - _acc[0]
    t = time.ticks_us()
    for _ in range(n):
        _noop(1)
    plain = time.ticks_diff(time.ticks_us(), t)
    return max(0, metered - plain) / n


class _Dev:
    def __init__(self):
        self.dev = SMPDevice(buf_size=BUF, skim=True)

    def write(self, buf):
        return _meter(self.dev.write, buf)

    def read_available(self):
        # The bytes a UART hands over are the client's allocation; the
        # device's work to produce them is not.
        return _meter(self.dev.read_available)

    def close(self):
        pass


class _Stream:
    def __init__(self, size):
        self.s = PatternStream(size)

    def readinto(self, buf):
        return _meter(self.s.readinto, buf)

    def seek(self, off, whence=0):
        return self.s.seek(off, whence)

    def tell(self):
        return self.s.tell()


def _upload(size):
    client = SMPClient(SerialTransport(_Dev(), max_packet=BUF), timeout_ms=5000)
    stream = _Stream(size)
    _acc[0] = _acc[1] = _acc[2] = 0
    gc.collect()
    gc.disable()  # the counting pass must not collect (run with a big enough heap)
    t = time.ticks_us()
    a = gc.mem_alloc() if _COUNT[0] else 0
    r = client.upload(stream, size=size, sha=b"\0" * 32, buf_size=BUF, buf_count=4)
    us = time.ticks_diff(time.ticks_us(), t) - _acc[0] - _acc[2] * _OVERHEAD[0]
    alloc = gc.mem_alloc() - a - _acc[1] if _COUNT[0] else 0
    gc.enable()
    return r.chunks, us, alloc


_OVERHEAD = [0.0]


def main():
    size = CHUNKS * (BUF - 40)
    _OVERHEAD[0] = _meter_overhead()
    _upload(size)  # warm up
    n, us, _ = _upload(size)
    _COUNT[0] = True
    n, _, alloc = _upload(size)
    pkt = bytearray(BUF)
    for i in range(BUF):
        pkt[i] = (i * 7) & 0xFF
    t = time.ticks_us()
    for _ in range(20):
        crc16(pkt)
    crc_us = time.ticks_diff(time.ticks_us(), t) / 20
    print("%.1f %d %.1f %d %s" % (us / n, alloc // n if alloc > 0 else -1, crc_us, size // n, compat.NATIVE_CODE))


main()
