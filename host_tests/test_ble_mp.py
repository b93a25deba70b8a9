"""The MicroPython BLE adapter (lib/smpdfu/ble_mp.py), its own code, on CPython
through a Bumble-backed ``bluetooth`` module, against an SMP peripheral served
by the portable server: scan/connect, the full cycle, faults.
"""

import errno
import sys

import pytest

import imagegen
from boardble import bumble_bluetooth
from boardble.fixtures import nrf, world  # noqa: F401  (pytest fixtures)
from boardble.link import AdapterLink
from smpdfu.client import SMPClient
from smpdfu.errors import NotFound
from smpdfu.mcuboot import verify
from smpdfu.updater import UPDATED, Updater


@pytest.fixture
def radio(world, monkeypatch):  # noqa: F811
    """The board's ``bluetooth.BLE()`` (Bumble behind it) with ``bluetooth`` importable."""
    ble = bumble_bluetooth.attach(world)
    monkeypatch.setitem(sys.modules, "bluetooth", bumble_bluetooth)
    return ble


def make_adapter(**kw):
    from smpdfu.ble_mp import MPBLEAdapter

    return MPBLEAdapter(**kw)


def connected_client(target="smp-nrf", timeout_ms=3000, **kw):
    a = make_adapter(**kw)
    a.connect(target, 5000)
    link = AdapterLink(a, target)
    return a, link, SMPClient(link, timeout_ms=timeout_ms)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    p = imagegen.make_image(tmp_path_factory.mktemp("bleimg") / "v2.bin", version="2.0.0", size=40000, seed=3)
    return p


@pytest.mark.parametrize("target", ["smp-nrf", "F0:F1:F2:F3:F4:F5", None])
def test_connect_by_name_address_or_service(radio, nrf, target):
    a, link, client = connected_client(target)
    assert a.connected
    assert a.mtu == 498  # min(ours 512, smp_svr's 498)
    assert client.echo("hello") == "hello"
    a.disconnect()
    assert not a.connected
    assert not radio._conns


def test_unknown_name_is_not_found(radio, nrf):
    a = make_adapter()
    with pytest.raises(NotFound, match="'nobody'"):
        a.connect("nobody", 300)
    assert not a.connected


def test_response_over_many_notifications_arrives_whole(radio, nrf):
    # A 23-byte MTU: 20-byte notifications, so a 600-byte echo answer takes ~31
    # of them in a row; the ring keeps them all (aioble's 1-deep queue would not).
    a, link, client = connected_client(mtu=23, rx_slots=40)
    assert a.mtu == 23
    text = "".join(chr(65 + i % 26) for i in range(600))
    assert client.echo(text) == text
    assert a.dropped == 0


@pytest.mark.parametrize("full_errno", [errno.ENOMEM, errno.EALREADY], ids=["nimble", "btstack"])
def test_full_controller_queue_is_waited_on(world, nrf, monkeypatch, full_errno):  # noqa: F811
    ble = bumble_bluetooth.attach(world, tx_queue=1, full_errno=full_errno)
    monkeypatch.setitem(sys.modules, "bluetooth", bumble_bluetooth)
    a, link, client = connected_client()
    text = "x" * 1500  # 4 writes of 495 bytes against a queue of one
    assert client.echo(text) == text
    assert ble.full > 0 and link.full == ble.full


def test_update_cycle_upload_test_reset_reconnect_confirm(radio, nrf, image):
    a, link, client = connected_client()
    log = []
    with open(image, "rb") as f:
        info = verify(f)
        f.seek(0)
        res = Updater(client, log=log.append, connect_ms=3000, reset_wait_ms=10000).run(f, info)
    assert res.outcome == UPDATED, (res.message, log)
    assert nrf.running_version() == "2.0.0"
    active = [s for s in nrf.state() if s["active"]][0]
    assert active["confirmed"]
    assert "reset" in nrf.events and "boot:swap" in nrf.events
    assert link.reconnects >= 1  # the reset dropped the link


def test_disconnect_mid_upload_reconnects_and_resumes(radio, nrf, image):
    a, link, client = connected_client(timeout_ms=1000)
    nrf.disconnect_after_chunks(6)
    with open(image, "rb") as f:
        res = client.upload(f)
    assert nrf.connections == 2 and link.reconnects == 1
    assert res.match is not False
    slot1 = [s for s in nrf.state() if s["slot"] == 1][0]
    assert slot1["version"] == "2.0.0"
    # Resumed where the server was, not from the start: one upload session,
    # and few chunks more than the image needs.
    assert nrf.events.count("upload-start") == 1
    assert res.chunks < 2 * (res.size // res.chunk_size + 1)


def test_lost_notification_is_retried(radio, nrf, image):
    a, link, client = connected_client(timeout_ms=500)
    with open(image, "rb") as f:
        nrf.drop_notifications(1)  # the answer to the params request
        res = client.upload(f)
    assert res.retries >= 1 or res.window < 3
    slot1 = [s for s in nrf.state() if s["slot"] == 1][0]
    assert slot1["version"] == "2.0.0"
