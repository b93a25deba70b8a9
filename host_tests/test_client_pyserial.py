"""The client over a real pty through PySerialUART (CPython).

First against the in-memory SMP device (a thread moves bytes between the pty and
it), then against the emulated nRF (Zephyr SMP server + MCUboot behind a
paced pty) with a real imgtool image: upload, test, reset, confirm.
"""

import io
import os
import select
import threading
import tty

import pytest

from smpdev import SMPDevice
from imagegen import make_image
from streams import PatternStream, pattern_sha

from smpdfu import mcuboot
from smpdfu.client import SMPClient
from smpdfu.errors import ImageError, SMPTimeout
from smpdfu.transport import SerialTransport
from smpdfu.pyserial_uart import PySerialUART

pytest.importorskip("serial")


class PtyDevice:
    """An in-memory SMPDevice on the master side of a pty, served by a thread."""

    def __init__(self, dev):
        self.dev = dev
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.02)
            if r:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    return
                self.dev.write(data)
            out = self.dev.read_available()
            while out:
                k = os.write(self.master, out)
                out = out[k:]

    def close(self):
        self._stop.set()
        self._t.join(2)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def pty_fake():
    p = PtyDevice(SMPDevice())
    yield p
    p.close()


def _client(path, baud=115200, timeout_ms=2000):
    return SMPClient(SerialTransport(PySerialUART(path, baud)), timeout_ms=timeout_ms)


def test_fake_over_pty_commands(pty_fake):
    c = _client(pty_fake.path)
    try:
        assert c.echo("over a pty") == "over a pty"
        assert c.params().buf_size == 384
        s = c.image_state()[0]
        assert s.confirmed and s.active and s.bootable and not s.pending
    finally:
        c.transport.close()


def test_fake_over_pty_upload_with_console_noise_and_drop(pty_fake):
    # the offset of the 5th chunk, from an in-memory dry run
    dry = SMPDevice()
    seen = []
    SMPClient(SerialTransport(dry)).upload(PatternStream(30000), progress=lambda o, t: seen.append(o))
    pty_fake.dev.console = b"<inf> app: tick\r\n"
    pty_fake.dev.drop_upload_offsets = [seen[4]]
    c = _client(pty_fake.path, timeout_ms=1000)
    try:
        seen = []
        r = c.upload(PatternStream(30000), progress=lambda o, t: seen.append(o))
        # at least the dropped chunk was retried (a slow VM may add a timeout)
        assert r.match is True and seen[-1] == 30000 and r.retries >= 1
        assert pty_fake.dev.slot_sha(1, 30000) == pattern_sha(30000)
    finally:
        c.transport.close()


def test_adapter_of_an_open_pyserial_port(pty_fake):
    import serial

    s = serial.Serial(pty_fake.path, 115200, timeout=1)
    u = PySerialUART(s)
    assert s.timeout == 0
    c = SMPClient(SerialTransport(u), timeout_ms=2000)
    try:
        assert c.echo("wrapped") == "wrapped"
    finally:
        s.close()


# ---------------------------------------------------------------- emulator

emulator = pytest.importorskip("smpdfu_host.emulator")


@pytest.fixture
def emu():
    e = emulator.Emulator(baud=1000000, flash_speed=0, boot_ms=50, reset_ms=20).start()
    yield e
    e.stop()


@pytest.fixture(scope="module")
def image_v2(tmp_path_factory):
    path = make_image(tmp_path_factory.mktemp("img") / "v2.bin", version="2.0.0", size=20 * 1024)
    with open(path, "rb") as f:
        info = mcuboot.verify(f)
    return path, info


def test_emulator_upload_test_reset_confirm(emu, image_v2):
    path, info = image_v2
    c = _client(emu.path, 1000000, timeout_ms=3000)
    try:
        c.wait_until_ready(5000)
        p = c.params()
        assert (p.buf_size, p.buf_count) == (384, 4)
        with open(path, "rb") as f:
            r = c.upload(f, sha=info)
        assert r.match is True and r.retries == 0
        assert r.window == 3 and r.chunk_size > 300
        slots = c.image_state()
        assert slots[1].hash == info.hash and slots[1].version == info.version_str
        slots = c.image_test(info.hash)
        assert slots[1].pending
        c.reset()
        c.wait_until_ready(10000)
        slots = c.image_state()
        assert slots[0].hash == info.hash and slots[0].active and not slots[0].confirmed
        c.image_confirm()
        assert c.image_state()[0].confirmed
    finally:
        c.transport.close()


def test_emulator_upload_survives_lost_lines(emu, image_v2):
    path, info = image_v2
    c = _client(emu.path, 1000000, timeout_ms=500)
    try:
        c.wait_until_ready(5000)
        with open(path, "rb") as f:
            data = f.read()

        class Faulty(io.BytesIO):
            chunks = 0

            def readinto(self, b):
                Faulty.chunks += 1
                if Faulty.chunks in (5, 12):
                    emu.drop_rx_lines(1)  # a request line vanishes on the way
                return io.BytesIO.readinto(self, b)

        r = c.upload(Faulty(data), len(data), sha=info.file_sha)
        assert r.match is True and r.retries >= 1
        assert c.image_state()[1].hash == info.hash
    finally:
        c.transport.close()


def test_emulator_resume_after_interrupt(emu, image_v2):
    path, info = image_v2
    c = _client(emu.path, 1000000)
    try:
        c.wait_until_ready(5000)

        class Stop(Exception):
            pass

        def stop(off, total):
            if off > total // 2:
                raise Stop()

        with open(path, "rb") as f:
            with pytest.raises(Stop):
                c.upload(f, sha=info, progress=stop)
        with open(path, "rb") as f:
            r = c.upload(f, sha=info)
        assert r.resumed_from > info.total_size // 2 and r.match is True
        assert c.image_state()[1].hash == info.hash
    finally:
        c.transport.close()


def test_emulator_rejects_garbage_image(emu):
    c = _client(emu.path, 1000000)
    try:
        c.wait_until_ready(5000)
        with pytest.raises(ImageError) as e:
            c.upload(io.BytesIO(bytes(4096)))
        assert e.value.name == "INVALID_IMAGE_HEADER_MAGIC"
    finally:
        c.transport.close()


def test_emulator_timeout_when_device_is_gone(emu):
    c = _client(emu.path, 1000000, timeout_ms=200)
    try:
        c.wait_until_ready(5000)
        emu.stall_rx(1000)
        with pytest.raises(SMPTimeout):
            c.echo("x")
    finally:
        c.transport.close()
