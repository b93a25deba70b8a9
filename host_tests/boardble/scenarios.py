"""What every board BLE adapter must get through, against the emulated nRF
(shared by test_ble_mp.py and test_ble_cp.py). Each takes an SMPClient on a
BLETransport over the adapter under test, connected to ``emu``.
"""

from smpdfu.mcuboot import verify
from smpdfu.updater import UPDATED, Updater


def slot(emu, n):
    """Slot ``n`` of image 0 as the emulated device reports it (dict)."""
    return [s for s in emu.state() if s["slot"] == n][0]


def echo_round_trip(client, emu, text):
    """An echo whose request and answer take many writes/notifications comes back whole."""
    assert client.echo(text) == text
    c = emu.counters()
    assert not c.get("rx_packets_overflow") and not c.get("rx_packets_bad_length")


def update_cycle(client, emu, image):
    """Upload, test, reset (the link drops), reconnect, confirm."""
    log = []
    with open(image, "rb") as f:
        info = verify(f)
        f.seek(0)
        res = Updater(client, log=log.append, connect_ms=3000, reset_wait_ms=10000).run(f, info)
    assert res.outcome == UPDATED, (res.message, log)
    assert emu.running_version() == "2.0.0"
    assert slot(emu, 0)["confirmed"]
    assert emu.event_count("reset") == 1
    assert emu.event_count("ble-connect") >= 2  # reconnected after the reset


def disconnect_mid_upload(client, emu, image):
    """The link drops after a few chunks: the client reconnects and the upload
    goes on from where the device is (its upload state is in RAM), not from the start."""
    emu.disconnect_after_chunks(6)
    with open(image, "rb") as f:
        res = client.upload(f)
    assert emu.event_count("ble-disconnect") == 1 and emu.event_count("ble-connect") == 2
    assert slot(emu, 1)["version"] == "2.0.0"
    assert emu.event_count("upload-start") == 1
    assert res.chunks < 1.5 * (res.size // res.chunk_size + 1)


def lost_notification(client, emu, image):
    """A lost notification costs a retry, not the upload; nothing unverified is kept."""
    p = client.params()
    with open(image, "rb") as f:
        emu.drop_tx_lines(1)  # the answer to the first chunk
        res = client.upload(f, buf_size=p.buf_size, buf_count=p.buf_count, first_timeout_ms=client.timeout_ms)
    assert emu.counters()["tx_notifications_dropped_fault"] == 1
    assert res.retries >= 1
    assert slot(emu, 1)["version"] == "2.0.0"
