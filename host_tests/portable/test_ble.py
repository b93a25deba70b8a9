"""The BLE transport (smpdfu.ble) over a fake adapter: Zephyr smp_bt's rules.

Portable: pytest on CPython and the MicroPython runner.
"""

import io

from smpdfu.ble import BLETransport, NotFound, is_address
from smpdfu.client import SMPClient
from smpdfu.errors import ProtocolError

from _portable import on_micropython, raises, skip
from fakeble import FakeBLEAdapter
from smpdev import SMPDevice
from streams import pattern_bytes


def _client(adapter=None, target="nrf", reassembly=None, **kw):
    if adapter is None:
        adapter = FakeBLEAdapter(**kw)
    return adapter, SMPClient(BLETransport(adapter, target, reassembly), timeout_ms=500)


def test_connects_on_creation_and_echoes():
    a, c = _client()
    assert a.connects == ["nrf"]
    assert c.echo("hello") == "hello"
    assert a.write_sizes == [8 + 4 + len("hello")]  # header + {"d": "hello"}: one write


def test_scan_targets_are_name_address_or_none():
    assert is_address("F0:F1:F2:F3:F4:F5") and is_address("aa:bb:cc:dd:ee:ff")
    assert not is_address("nrf") and not is_address("F0:F1:F2:F3:F4") and not is_address("F0-F1-F2-F3-F4-F5")
    a, c = _client(target="F0:F1:F2:F3:F4:F5")
    assert c.echo("x") == "x"
    a, c = _client(target=None)
    assert a.connects == [None]
    e = raises(NotFound, BLETransport, FakeBLEAdapter(), "other")
    assert "other" in str(e)


def test_long_request_is_split_at_mtu_when_the_server_reassembles():
    a, c = _client(mtu=247, reassembly=True)
    c.transport.request_limit(2475)  # what the upload asks first
    text = "x" * 600
    assert c.echo(text) == text  # the answer spans three notifications too
    assert a.write_sizes == [244, 244, 8 + 6 + 600 - 488]
    assert a.bad_writes == 0


def test_without_reassembly_a_request_must_fit_one_write():
    a, c = _client(mtu=247, reassembly=False)
    assert c.transport.request_limit(384) == 244
    e = raises(ProtocolError, c.echo, "x" * 300)
    assert "reassemble" in str(e)
    assert a.write_sizes == []


def test_request_limit_follows_buffer_and_mtu():
    a = FakeBLEAdapter(mtu=247)
    t = BLETransport(a, "nrf")  # reassembly unknown: decided from the buffer size
    assert t.request_limit(384) == 244  # Zephyr's default buffer: one write
    assert t.request_limit(2475) == 2475  # smp_svr's BT overlay: reassembles
    assert BLETransport(FakeBLEAdapter(), "nrf", max_packet=1024).request_limit(2475) == 1024
    assert BLETransport(FakeBLEAdapter(), "nrf", reassembly=False).request_limit(2475) == 244
    assert BLETransport(FakeBLEAdapter(mtu=498), "nrf", reassembly=True).request_limit(384) == 384


def test_full_controller_queue_is_waited_on():
    a, c = _client()
    a.full = 5
    assert c.echo("patient") == "patient"
    assert a.full == 0 and len(a.write_sizes) == 1


def test_request_on_a_dropped_link_reconnects_first():
    a, c = _client()
    assert c.echo("one") == "one"
    a.disconnect()
    assert c.echo("two") == "two"
    assert a.connects == ["nrf", "nrf"]


def test_reset_reconnects():
    a, c = _client()
    c.reset(settle_ms=0, reconnect_ms=1000)
    assert a.dev.resets == 1
    assert a.connects == ["nrf", "nrf"] and a.connected


def test_upload_fills_the_server_buffer_with_reassembly():
    dev = SMPDevice(buf_size=2475, buf_count=4)
    a, c = _client(FakeBLEAdapter(dev, mtu=498))
    size = 20 * 1024 + 3
    img = pattern_bytes(size)
    r = c.upload(io.BytesIO(img))
    assert r.match is True and dev.slot(1, size) == img
    assert dev.max_request == 2475 and dev.oversize == 0
    assert max(a.write_sizes) == 495 and a.bad_writes == 0


def test_upload_without_reassembly_sends_one_write_per_chunk():
    dev = SMPDevice(buf_size=384)
    a, c = _client(FakeBLEAdapter(dev, mtu=247, reassembly=False))
    size = 5000
    img = pattern_bytes(size)
    r = c.upload(io.BytesIO(img))
    assert r.match is True and dev.slot(1, size) == img
    assert dev.max_request == 244 and a.bad_writes == 0


def test_lost_notification_is_retried():
    dev = SMPDevice(buf_size=2475)
    a, c = _client(FakeBLEAdapter(dev, mtu=498))
    size = 40 * 1024
    state = {"n": 0}
    handle = dev._handle

    def lose_fourth_answer(pkt, wire_len=0):
        state["n"] += 1
        if state["n"] == 5:  # params, the first chunk, then the third data chunk's answer
            a.drop_notifications = 1
        handle(pkt, wire_len)

    dev._handle = lose_fourth_answer
    img = pattern_bytes(size)
    r = c.upload(io.BytesIO(img), timeout_ms=300)
    assert r.match is True and dev.slot(1, size) == img
    assert r.retries >= 1


def test_partial_response_is_dropped_once_overdue():
    from smpdfu.compat import sleep_ms

    a, c = _client(mtu=247)
    c.transport.request_limit(2475)
    seq = c.send_request(2, 0, 0, {"d": "y" * 300})  # the answer takes 2 notifications
    a._rx.pop()  # lose the second one
    assert c.poll() is None  # the first piece waits for the rest
    sleep_ms(1100)
    assert c.poll() is None  # overdue: dropped
    assert c.transport.dropped == 1
    c.cancel(seq)
    assert c.echo("after") == "after"  # the next answer is read whole


class _NullAdapter:
    # Takes every write, answers nothing: what the transport itself allocates.
    connected = True
    mtu = 498

    def connect(self, target, timeout_ms):
        pass

    def write(self, buf):
        return True

    def read_notification(self):
        return None

    def wait(self, ms):
        pass

    def disconnect(self):
        pass


def test_send_copies_nothing():
    # MicroPython: a 2475-byte request in 495-byte writes allocates only the
    # small views of its pieces, never a copy of the packet.
    if not on_micropython():
        skip("gc.mem_alloc() measurements are for MicroPython")
    import gc

    t = BLETransport(_NullAdapter(), "nrf", reassembly=True)
    t.send(2475)  # warm up
    gc.collect()
    a = gc.mem_alloc()
    for _ in range(10):
        t.send(2475)
    per_send = (gc.mem_alloc() - a) // 10
    assert per_send < 400, per_send
