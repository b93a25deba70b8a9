"""Runs on the MicroPython unix port (bench_mcu.py starts it): the client's CPU per chunk.

    micropython mcu_chunk.py MODE BUF_SIZE [CHUNKS]

MODE: ``native`` (what compat picks: viper where the emitter exists) or
``python`` (native code masked: the portable loops CircuitPython runs).

Record, then replay. The upload first runs once against the emulated device
(skimming the frames), recording what each ``read_available()`` returned and a
hash of everything written. The measured runs then replay it with stand-ins
that cost what a board's do, one C call each and no Python frame of the rig:

- the UART is the board's own adapter, ``uart.UART``, around an object
  whose ``any`` (a list's ``pop``), ``read`` and ``write`` (an ``io.BytesIO``'s)
  are C, as ``machine.UART``'s are;
- the image is an ``io.BytesIO`` (its ``readinto`` is C, as a file's is).

So the figure counts all the time from ``upload()`` to its return: the client,
its adapter and the transport, and these C calls; nothing is subtracted. The
replay must make the very same calls as the recording (each poll takes the
recorded answer, and the bytes written must hash the same), else it stops.

Prints one line: ``us_chunk alloc_chunk crc_pass_us data_per_chunk native``,
``crc_pass_us`` being one pure-Python table CRC-16 pass over a whole packet of
BUF_SIZE bytes, measured in the same run.
"""

import gc
import io
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
from smpdfu.uart import UART  # noqa: E402

from smpdev import SMPDevice  # noqa: E402
from streams import PatternStream  # noqa: E402


class _Recorder:
    """The emulated device, recording what the client's polls got and what it wrote."""

    def __init__(self):
        self.dev = SMPDevice(buf_size=BUF, skim=True)
        self.reads = []  # one entry per poll: the bytes, or b"" for nothing
        self.sha = compat.sha256()
        self.written = 0

    def write(self, buf):
        self.sha.update(bytes(buf))
        self.written += len(buf)
        return self.dev.write(buf)

    def read_available(self):
        data = self.dev.read_available()
        self.reads.append(data or b"")
        return data

    def close(self):
        pass


class _UART:
    """Stands for ``machine.UART``: its attributes are C callables (set in _replay)."""


def _image(size):
    buf = bytearray(size)
    s = PatternStream(size)
    mv = memoryview(buf)
    got = 0
    while got < size:
        got += s.readinto(mv[got:])
    return buf


def _upload(uart, stream, size):
    client = SMPClient(SerialTransport(uart, max_packet=BUF), timeout_ms=5000)
    return client.upload(stream, size=size, sha=b"\0" * 32, buf_size=BUF, buf_count=4)


def _replay(rec, image, size, count):
    """One upload against the recording: ``(chunks, us, bytes allocated)``."""
    u = _UART()
    polls = [len(r) for r in rec.reads]
    polls.reverse()
    u.any = polls.pop
    src = io.BytesIO(b"".join(rec.reads))
    u.read = src.read
    # Preallocated and owned (a BytesIO made from bytes copies them at its
    # first write): the measured writes never grow or copy it.
    sink = io.BytesIO()
    zeros = bytes(4096)
    while sink.tell() < rec.written:
        sink.write(zeros)
    sink.seek(0)
    u.write = sink.write
    uart = UART(u)
    stream = io.BytesIO(image)  # (made here: it may copy the image)
    gc.collect()
    gc.disable()  # the counting pass must not collect (run with a big enough heap)
    a = gc.mem_alloc() if count else 0
    t = time.ticks_us()
    try:
        r = _upload(uart, stream, size)
    except IndexError:  # polls.pop(): more polls than recorded
        raise SystemExit("the replay polled more often than the recording")
    us = time.ticks_diff(time.ticks_us(), t)
    alloc = gc.mem_alloc() - a if count else 0
    gc.enable()
    if polls or src.read(1) or sink.tell() != rec.written:
        raise SystemExit("the replay did not poll and write as the recording did")
    sha = compat.sha256()
    sha.update(memoryview(sink.getvalue())[:rec.written])
    if sha.digest() != rec.digest:
        raise SystemExit("the replay wrote other bytes than the recording")
    return r.chunks, us, alloc


def main():
    size = CHUNKS * (BUF - 40)
    image = _image(size)
    rec = _Recorder()
    _upload(rec, io.BytesIO(image), size)
    rec.digest = rec.sha.digest()
    _replay(rec, image, size, False)  # warm up
    n, us, _ = _replay(rec, image, size, False)
    _, _, alloc = _replay(rec, image, size, True)
    pkt = bytearray(BUF)
    for i in range(BUF):
        pkt[i] = (i * 7) & 0xFF
    t = time.ticks_us()
    for _ in range(20):
        crc16(pkt)
    crc_us = time.ticks_diff(time.ticks_us(), t) / 20
    print("%.1f %d %.1f %d %s" % (us / n, alloc // n if alloc > 0 else -1, crc_us, size // n, compat.NATIVE_CODE))


main()
