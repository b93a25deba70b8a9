"""UART adapters and the serial transport (portable)."""

from smpdfu.client import SMPClient
from smpdfu.errors import FrameError
from smpdfu.framing import FrameEncoder
from smpdfu.transport import SerialTransport
from smpdfu.pyserial_uart import PySerialUART
from smpdfu.uart import UART

from _portable import raises
from memlink import PipeEnd, pipe_pair
from smpdev import SMPDevice
from streams import PatternStream


class _MachineLike:
    """machine.UART's API; write accepts at most ``per_write`` bytes (or None: timeout)."""

    def __init__(self, per_write=0, stall_every=0):
        self.rx = bytearray()
        self.tx = bytearray()
        self.per_write = per_write
        self.stall_every = stall_every
        self.calls = 0

    def any(self):
        return len(self.rx)

    def read(self, n=-1):
        if not self.rx:
            return None
        n = len(self.rx) if n < 0 else min(n, len(self.rx))
        d = bytes(self.rx[:n])
        self.rx[:n] = b""
        return d

    def write(self, buf):
        self.calls += 1
        if self.stall_every and self.calls % self.stall_every == 0:
            return None  # machine.UART returns None on a write timeout
        n = len(buf)
        if self.per_write and n > self.per_write:
            n = self.per_write
        self.tx.extend(bytes(buf[:n]))
        return n


class _BusioLike:
    def __init__(self):
        self.rx = bytearray()
        self.tx = bytearray()

    @property
    def in_waiting(self):
        return len(self.rx)

    def read(self, n):
        d = bytes(self.rx[:n])
        self.rx[:n] = b""
        return d or None

    def write(self, buf):
        self.tx.extend(bytes(buf))
        return len(buf)


def test_transport_wraps_a_uart_by_duck_typing():
    assert isinstance(SerialTransport(_MachineLike()).uart, UART)
    assert isinstance(SerialTransport(_BusioLike()).uart, UART)
    dev = SMPDevice()
    assert SerialTransport(dev).uart is dev  # already has read_available
    assert "not a UART: int" in str(raises(TypeError, SerialTransport, 42))


def test_machine_adapter_partial_writes_and_timeouts():
    m = _MachineLike(per_write=10, stall_every=3)
    u = UART(m)
    data = bytes(range(100))
    u.write(memoryview(data))
    assert bytes(m.tx) == data
    assert u.read_available() is None
    m.rx.extend(b"abc")
    assert u.read_available() == b"abc"
    assert u.read_available() is None


def test_uart_that_accepts_nothing_fails_with_what_was_written():
    # a fake clock: each look at it is 500 ms later, so the 2 s stall limit
    # passes after a few tries, without waiting
    from smpdfu import uart as uart_mod

    class Dead(_MachineLike):
        def write(self, buf):
            n = 4 if not self.tx else 0
            self.tx.extend(bytes(buf[:n]))
            return n

    clock = [0]

    def ticks():
        clock[0] += 500
        return clock[0]

    saved = uart_mod.ticks_ms, uart_mod.sleep_ms
    uart_mod.ticks_ms, uart_mod.sleep_ms = ticks, lambda ms: None
    try:
        e = raises(OSError, UART(Dead()).write, b"0123456789")
    finally:
        uart_mod.ticks_ms, uart_mod.sleep_ms = saved
    assert str(e) == "UART stalled: 4 of 10 bytes"


def test_busio_adapter():
    b = _BusioLike()
    u = UART(b)
    u.write(b"hello")
    assert bytes(b.tx) == b"hello"
    assert u.read_available() is None
    b.rx.extend(b"xyz")
    assert u.read_available() == b"xyz"


def test_pipe_pair_carries_bytes_both_ways():
    a, b = pipe_pair(max_read=3)
    a.write(b"12345")
    assert b.read_available() == b"123"
    assert b.read_available() == b"45"
    assert b.read_available() is None
    b.write(memoryview(b"back"))
    assert a.read_available() == b"bac"
    assert isinstance(a, PipeEnd)


def _send(t, pkt):
    t.packet[:len(pkt)] = pkt
    t.send(len(pkt))


def test_transport_over_pipe_roundtrip_packet():
    a, b = pipe_pair()
    ta = SerialTransport(a)
    tb = SerialTransport(b)
    _send(ta, b"\x02\x08\x00\x00\x00\x00\x07\x00")
    assert tb.recv() == b"\x02\x08\x00\x00\x00\x00\x07\x00"
    assert tb.recv() is None


def test_transport_line_gap_sends_the_same_bytes_line_by_line():
    m1 = _MachineLike()
    m2 = _MachineLike()
    pkt = bytes(range(256)) * 2
    t1 = SerialTransport(m1)
    t2 = SerialTransport(m2, line_gap_ms=2)
    for t in (t1, t2):
        t.fit(1024)  # a server with 1024-byte buffers: packets of 384 bytes only until then
        _send(t, pkt)
    assert bytes(m1.tx) == bytes(m2.tx)
    lines = bytes(m2.tx).split(b"\n")
    assert m2.calls == len(lines) - 1  # one write per line
    assert m2.calls >= 6


def test_transport_raises_frame_error_and_reset_drops_partial_frames():
    m = _MachineLike()
    t = SerialTransport(m)
    framed = bytearray(FrameEncoder(64).encode(packet=b"\x03\x08\x00\x00\x00\x00\x01\x00"))
    framed[5] = 0x41 if framed[5] != 0x41 else 0x42
    m.rx.extend(framed)
    raises(FrameError, t.recv)
    m.rx.extend(b"\x06\x09AAAA")  # half a frame, then garbage
    t.reset()
    m.rx.extend(FrameEncoder(64).encode(packet=b"\x03\x08\x00\x00\x00\x00\x01\x00"))
    assert t.recv() == b"\x03\x08\x00\x00\x00\x00\x01\x00"


def test_client_over_machine_like_uart_with_device_in_between():
    # a machine.UART adapter whose other end is the fake device, moved by hand
    m = _MachineLike(per_write=50)
    dev = SMPDevice()

    class Link:
        def write(self, buf):
            UART(m).write(buf)
            dev.write(bytes(m.tx))
            m.tx[:] = b""
            d = dev.read_available()
            if d:
                m.rx.extend(d)

        def read_available(self):
            return UART(m).read_available()

        def close(self):
            pass

    c = SMPClient(SerialTransport(Link()), timeout_ms=500)
    assert c.echo("via machine uart") == "via machine uart"


def test_pyserial_adapter_imports_lazily():
    # constructing with an object (not a str) must not need pyserial
    class Fake:
        timeout = 1

        def read(self, n):
            return b""

        def write(self, b):
            return len(b)

        def close(self):
            pass

    f = Fake()
    u = PySerialUART(f)
    assert f.timeout == 0
    assert u.read_available() is None
    u.write(b"abc")  # UART's write and close, on the pyserial port
    u.close()


def test_request_limit_leaves_room_for_the_serial_frame():
    # The frame's length and CRC are decoded into the server's netbuf too.
    class Quiet:
        def write(self, b):
            return len(b)

        def read_available(self):
            return None

        def close(self):
            pass

    t = SerialTransport(Quiet(), max_packet=2048)
    assert t.request_limit(384) == 380
    assert t.request_limit(2048) == 2044
    assert t.request_limit(8192) == 2048  # never more than this side can build


def _linked(dev):
    # a transport whose other end is ``dev``, moved by hand
    m = _MachineLike()

    class Link:
        def write(self, buf):
            dev.write(bytes(buf))
            d = dev.read_available()
            if d:
                m.rx.extend(d)

        def read_available(self):
            return UART(m).read_available()

        def close(self):
            pass

    return Link()


def test_params_fit_the_frame_buffer_to_the_server():
    # The frame buffer holds 384 bytes (what any server takes) until params
    # tell the server's size: a 384-byte server keeps that first buffer, a
    # bigger one gets one of its size (at most max_packet); the client builds
    # into the new packet.
    dev = SMPDevice(buf_size=384)
    t = SerialTransport(_linked(dev), max_packet=2048)
    c = SMPClient(t, timeout_ms=500)
    first = t.packet
    assert t.max_packet == 2048 and len(first) == 384  # before params
    assert c.echo("before") == "before"
    assert c.params().buf_size == 384
    assert t.packet is first  # made once
    assert t.request_limit(384) == 380 and t.packet is first
    assert c.echo("after the fit") == "after the fit"
    raises(FrameError, t.send, 400)  # larger than the buffer
    assert t.fit(1 << 16) == 2048 and len(t.packet) == 2048  # never beyond max_packet
    assert t.fit(64) == 60 and len(t.packet) == 384  # never below what any SMP server takes

    dev = SMPDevice(buf_size=1024)
    t = SerialTransport(_linked(dev), max_packet=2048)
    c = SMPClient(t, timeout_ms=500)
    assert c.params().buf_size == 1024 and len(t.packet) == 1024
    assert c.echo("x" * 1000) == "x" * 1000  # built in the new buffer
    assert len(SerialTransport(_linked(dev), max_packet=100).packet) == 100


def test_upload_given_buf_size_without_params_sends_requests_of_that_size():
    # request_limit sizes the frame buffer too: no params request, full-size chunks
    dev = SMPDevice(buf_size=2048, params=False)  # (asked, it would make the client take 384)
    t = SerialTransport(_linked(dev), max_packet=2048)
    c = SMPClient(t, timeout_ms=500)
    r = c.upload(PatternStream(6000), buf_size=2048, buf_count=4)
    assert r.match is True and dev.max_request == 2044 and len(t.packet) == 2048
