"""The PC's BLE adapter (Bumble) against the emulated nRF peripheral (Bumble).

Real BLE stacks on both sides over Bumble's virtual link (the central
reaches it through the emulator's relay controller, as another process
would): scan, connect, MTU, GATT, notifications, the whole update cycle and
the faults.
"""

import pytest

from smpdfu.ble import BLETransport, NotFound
from smpdfu.client import SMPClient
from smpdfu.errors import LinkError, ProtocolError
from smpdfu_host.ble_bumble import BumbleAdapter
from smpdfu_host.cli import run
from smpdfu_host.emulator.ble import BLEEmulator
from smpdfu_host.imgtool_image import make_image


@pytest.fixture
def emu():
    e = BLEEmulator(flash_speed=0, timing=False, boot_ms=50).start()
    yield e
    e.stop()


@pytest.fixture
def image(tmp_path):
    return make_image(tmp_path / "app.bin", "1.1.0", 60 * 1024)


def _client(emu, target="nrf-smp", timeout_ms=2000):
    adapter = BumbleAdapter(emu.hci)
    return SMPClient(BLETransport(adapter, target, connect_ms=5000), timeout_ms=timeout_ms)


@pytest.fixture
def client(emu):
    c = _client(emu)
    yield c
    c.transport.close()


def _upload(c, path, **kw):
    with open(path, "rb") as f:
        return c.upload(f, **kw)


def test_connect_by_name_address_or_service(emu):
    for target in ("nrf-smp", emu.cfg.address, None):
        c = _client(emu, target)
        try:
            assert c.echo("hi %s" % target) == "hi %s" % target
            assert c.transport.adapter.mtu == 498  # smp_svr's BT_L2CAP_TX_MTU
        finally:
            c.transport.close()


def test_not_found_names_the_target(emu):
    adapter = BumbleAdapter(emu.hci)
    try:
        with pytest.raises(NotFound, match="'elsewhere'"):
            BLETransport(adapter, "elsewhere", connect_ms=500)
    finally:
        adapter.close()


def test_long_request_and_response_span_writes_and_notifications(client):
    assert client.transport.request_limit(client.params().buf_size) == 2475  # reassembling server
    text = "z" * 1500  # 4 writes and 4 notifications of up to 495 bytes
    assert client.echo(text) == text


def test_upload_fills_the_reassembled_buffer(emu, client, image):
    r = _upload(client, image)
    assert r.match is True and r.retries == 0
    assert r.chunk_size > 2000  # requests of up to 2475 bytes, split into 495-byte writes
    assert "rx_packets_overflow" not in emu.counters()
    assert emu.state()[1]["hash"] is not None


def test_upload_without_reassembly(image):
    e = BLEEmulator(flash_speed=0, timing=False, reassembly=False, buf_size=384, mtu=247).start()
    try:
        c = _client(e)
        r = _upload(c, image)
        c.transport.close()
        assert r.match is True
        assert r.chunk_size <= 244 - 20
        assert e.counters().get("rx_packets_bad_length", 0) == 0
    finally:
        e.stop()


def test_whole_cycle_through_the_cli(emu, image, capsys):
    # upload, test, reset (the link drops), reconnect, confirm
    assert run(["--ble", "nrf-smp", "--hci", emu.hci, "update", str(image), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1.1.0" in out and "active confirmed" in out
    assert emu.running_version() == "1.1.0"
    assert emu.event_count("ble-connect") == 2  # before and after the reset
    assert emu.event_count("confirm") == 1


def test_disconnect_mid_upload_reconnects_and_resumes(emu, client, image):
    emu.disconnect_after_chunks(8)
    r = _upload(client, image, timeout_ms=1000)
    assert r.match is True
    assert emu.counters()["disconnects_fault"] == 1
    assert emu.event_count("ble-connect") == 2
    assert emu.event_count("upload-start") == 1  # resumed, not started over


# The server's buffers are given, so the first packet of the upload is its first chunk.
_KNOWN = dict(buf_size=2475, buf_count=4, timeout_ms=500, first_timeout_ms=1000)


def test_lost_notification_is_retried(emu, client, image):
    emu.drop_tx_lines(1)  # the answer to the first chunk
    r = _upload(client, image, **_KNOWN)
    assert r.match is True and r.retries == 1
    assert emu.counters()["tx_notifications_dropped_fault"] == 1


def test_lost_write_is_retried(emu, client, image):
    emu.drop_rx_lines(1)  # the first piece of the first chunk: the rest is dropped too
    r = _upload(client, image, **_KNOWN)
    assert r.match is True and r.retries == 1
    assert emu.counters()["rx_writes_dropped_fault"] == 1


def test_corrupted_upload_is_never_marked_for_test(emu, client, image):
    emu.corrupt_rx_lines(3)
    with pytest.raises(ProtocolError, match="mismatch"):
        _upload(client, image, **_KNOWN)
    # the CLI's update stops at the same check: nothing pending, nothing confirmed
    client.transport.close()
    assert not any(s.get("pending") for s in emu.state())
    assert emu.event_count("test") == 0 and emu.event_count("confirm") == 0


def test_reset_mid_upload_reconnects_and_starts_over(emu, client, image):
    emu.reset_after_chunks(5)  # the upload state is in RAM: lost with the reset
    r = _upload(client, image, **_KNOWN)
    assert r.match is True
    assert emu.event_count("reset") == 1 and emu.event_count("upload-start") == 2
    assert emu.event_count("ble-connect") == 2


def test_emulate_ble_in_another_process(image):
    from smpdfu_host.emulator.process import EmulatorProcess

    with EmulatorProcess(["--ble", "--name", "dfu-me", "--flash-speed", "0", "--no-timing"], via_cli=True) as p:
        assert p.name == "dfu-me" and p.hci.startswith("tcp-client:127.0.0.1:")
        assert run(["--ble", "dfu-me", "--hci", p.hci, "echo", "across"]) == 0
        # a second central process after the first one has gone
        assert run(["--ble", "any", "--hci", p.hci, "image", "upload", str(image), "--no-progress"]) == 0
        p.wait_line("upload-done")


def test_smpclient_bumble_transport_talks_to_the_emulator(emu, image):
    # Wire oracle: PyPI smpclient's own Bumble transport against the peripheral.
    import asyncio

    from smpclient import SMPClient as PyPISMPClient
    from smpclient.requests.image_management import ImageStatesRead
    from smpclient.requests.os_management import EchoWrite
    from smpclient.transport.bumble import SMPBumbleTransport

    with open(image, "rb") as f:
        data = f.read()

    async def go():
        transport = SMPBumbleTransport(hci=emu.hci)
        async with PyPISMPClient(transport, emu.cfg.address, timeout_s=10.0) as client:
            echo = await client.request(EchoWrite(d="oracle"))
            async for _off in client.upload(data):
                pass
            state = await client.request(ImageStatesRead())
            return echo.r, [i.slot for i in state.images]

    r, slots = asyncio.run(go())
    assert r == "oracle"
    assert slots == [0, 1]
    assert emu.wait_event("upload-done")["match"] is True


def test_demo_ble_updates_the_emulated_nrf():
    import io

    from smpdfu_host.demo_ble import run_demo

    out = io.StringIO()
    res = run_demo(size=16 * 1024, emulator_args=["--flash-speed", "0", "--no-timing"], out=out)
    assert res["ok"], out.getvalue()
    assert res["after"] == "1.1.0" and res["confirmed"]
    assert "TRANSPORT = \"ble\"" in out.getvalue()


def test_encrypted_link_pairs_when_the_device_asks(image):
    e = BLEEmulator(flash_speed=0, timing=False, encrypt=True).start()
    try:
        c = _client(e)  # pair=None: pairs when subscribing is refused
        try:
            assert c.echo("sealed") == "sealed"
            assert c.transport.adapter._conn.is_encrypted
        finally:
            c.transport.close()
        never = BumbleAdapter(e.hci, pair=False)
        try:
            with pytest.raises(LinkError, match="(?i)encryption"):
                BLETransport(never, "nrf-smp", connect_ms=5000)
        finally:
            never.close()
    finally:
        e.stop()


def test_cli_names_a_device_it_cannot_find(emu, capsys):
    assert run(["--ble", "nowhere", "--hci", emu.hci, "--scan-timeout", "0.5", "echo", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: not found:") and "'nowhere'" in err and len(err.splitlines()) == 1
