"""Each emulator fault, and what smpdfu's client does about it.

The client (lib/smpdfu) talks to the in-process emulated nRF over its pty
through PySerialUART, exactly as the CLI does. For every fault the emulator
can inject, a test shows that the client either recovers by itself or fails
with an error that names what went wrong.
"""

import io

import pytest
from emulator.fixtures import emu_factory  # noqa: F401  (fixture)
from imagegen import make_image

from smpdfu import mcuboot
from smpdfu.client import SMPClient
from smpdfu.errors import SMPTimeout
from smpdfu.transport import SerialTransport
from smpdfu.pyserial_uart import PySerialUART

BAUD = 1000000
# Generous against this VM's scheduling hiccups (a 5 ms sleep can take 300 ms);
# tests that expect a timeout pass a short one explicitly.
TIMEOUT_MS = 2000
SHORT_MS = 300


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("img") / "app.bin")
    make_image(path, version="1.4.0", size=24 * 1024, seed=7)
    with open(path, "rb") as f:
        data = f.read()
    return data, mcuboot.verify(io.BytesIO(data))


@pytest.fixture
def dev(emu_factory):  # noqa: F811
    emu = emu_factory(baud=BAUD)
    client = SMPClient(SerialTransport(PySerialUART(emu.path, baudrate=BAUD), max_packet=4096), timeout_ms=TIMEOUT_MS)
    client.wait_until_ready(5000)
    yield emu, client
    client.transport.close()


class FaultAt(io.BytesIO):
    """An image stream that injects ``fault()`` when chunk number ``at`` is read."""

    def __init__(self, data, at, fault):
        io.BytesIO.__init__(self, data)
        self.reads = 0
        self.at = at
        self.fault = fault

    def readinto(self, b):
        self.reads += 1
        if self.reads == self.at:
            self.fault()
        return io.BytesIO.readinto(self, b)


def _upload(client, data, info, at, fault):
    # reads 1..n are the SHA pass only when sha is not given: here it is,
    # so every read is an upload chunk.
    return client.upload(FaultAt(data, at, fault), len(data), sha=info)


def _slot1(client, info):
    slots = client.image_state()
    assert slots[1].hash == info.hash, slots
    return slots[1]


@pytest.mark.parametrize("fault, counter", [
    ("drop_rx_lines", "rx_lines_dropped_fault"),  # a request line vanishes on the way
    ("corrupt_rx_lines", "frames_bad"),  # Zephyr drops the frame (bad CRC or base64)
])
def test_lost_or_corrupted_request_line_is_recovered(dev, image, fault, counter):
    emu, client = dev
    data, info = image
    r = _upload(client, data, info, 6, lambda: getattr(emu, fault)(1))
    assert r.match is True and r.retries >= 1
    assert emu.counters()[counter] == 1
    _slot1(client, info)


def test_corrupted_and_dropped_response_lines_are_recovered(dev, image):
    emu, client = dev
    data, info = image
    r = _upload(client, data, info, 5, lambda: emu.corrupt_tx_lines(1))
    assert r.match is True and r.retries >= 1
    r2 = client.upload(io.BytesIO(data), len(data), sha=info)  # same sha: resumes at the end
    assert r2.resumed_from == len(data)
    emu.drop_tx_lines(1)
    with pytest.raises(SMPTimeout) as e:
        client.echo("lost", timeout_ms=SHORT_MS)
    assert "no response to group 0 (OS) command 0 within %d ms" % SHORT_MS in str(e.value)
    assert client.echo("next") == "next"


def test_delayed_response_within_and_beyond_the_timeout(dev):
    emu, client = dev
    emu.delay_responses(200)
    assert client.echo("slow") == "slow"  # 200 ms, well within the timeout
    emu.delay_responses(1500)
    with pytest.raises(SMPTimeout) as e:
        client.echo("too slow", timeout_ms=SHORT_MS)
    assert "within %d ms" % SHORT_MS in str(e.value)
    # The late answer arrives after the timeout: it is ignored, not taken for the next one.
    assert client.echo("after", timeout_ms=5000) == "after"
    assert client.stray >= 1


def test_delayed_upload_answers_are_waited_for(dev, image):
    emu, client = dev
    data, info = image
    r = _upload(client, data, info, 4, lambda: emu.delay_responses(300, 3))
    assert r.match is True
    _slot1(client, info)


def test_reset_mid_upload_restarts_the_upload_from_zero(dev, image):
    emu, client = dev
    data, info = image
    boots = emu.event_count("boot")
    emu.reset_after_chunks(5)
    r = client.upload(io.BytesIO(data), len(data), sha=info)
    # The device rebooted mid-upload and lost the upload state (RAM); the
    # client noticed it answering offset 0 and started over with len and sha.
    assert emu.event_count("boot") == boots + 1
    assert r.match is True and r.retries >= 1
    _slot1(client, info)


def test_upload_against_a_device_gone_for_good_fails_clearly(dev, image):
    emu, client = dev
    data, info = image
    stream = FaultAt(data, 5, lambda: emu.stall_rx(60000))  # from chunk 5 on, nothing is decoded
    with pytest.raises(SMPTimeout) as e:
        client.upload(stream, len(data), sha=info, retries=1, timeout_ms=SHORT_MS)
    msg = str(e.value)
    assert "upload failed at offset" in msg and "of %d after 2 attempts" % len(data) in msg, msg
    assert "within %d ms" % SHORT_MS in msg


def test_log_text_interleaved_during_upload(dev, image):
    emu, client = dev
    data, info = image
    emu.log_every(3)
    r = client.upload(io.BytesIO(data), len(data), sha=info)
    emu.log_every(0)
    assert r.match is True
    assert emu.counters()["log_lines"] >= 3
    _slot1(client, info)
