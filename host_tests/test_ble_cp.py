"""The CircuitPython BLE adapter (lib/smpdfu/ble_cp.py), its own code, with the
real ``adafruit_ble`` from PyPI on a Bumble-backed ``_bleio``, against an SMP
peripheral served by the portable server: scan/connect, the full cycle, faults.
"""

import importlib
import sys

import pytest

import imagegen
from boardble import bumble_bleio
from boardble.fixtures import nrf, world  # noqa: F401  (pytest fixtures)
from boardble.link import AdapterLink
from smpdfu.client import SMPClient
from smpdfu.errors import NotFound
from smpdfu.mcuboot import verify
from smpdfu.updater import UPDATED, Updater


@pytest.fixture
def ble_cp(world, monkeypatch):  # noqa: F811
    """``smpdfu.ble_cp`` imported fresh on top of adafruit_ble on the Bumble ``_bleio``."""
    bumble_bleio.attach(world)
    for name in list(sys.modules):
        if name == "adafruit_ble" or name.startswith("adafruit_ble.") or name == "smpdfu.ble_cp":
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "_bleio", bumble_bleio)
    mod = importlib.import_module("smpdfu.ble_cp")
    assert mod._bleio is bumble_bleio and "adafruit_ble" in sys.modules
    return mod


def connected_client(ble_cp, target="smp-nrf", timeout_ms=3000, **kw):
    a = ble_cp.CPBLEAdapter(**kw)
    a.connect(target, 5000)
    link = AdapterLink(a, target)
    return a, link, SMPClient(link, timeout_ms=timeout_ms)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return imagegen.make_image(tmp_path_factory.mktemp("bleimg") / "v2.bin", version="2.0.0", size=40000, seed=3)


@pytest.mark.parametrize("target", ["smp-nrf", "F0:F1:F2:F3:F4:F5", None])
def test_connect_by_name_address_or_service(ble_cp, nrf, target):
    a, link, client = connected_client(ble_cp, target)
    assert a.connected
    assert a.mtu == 498  # min(CircuitPython's 512, smp_svr's 498)
    assert client.echo("hello") == "hello"
    a.disconnect()
    assert not a.connected


def test_unknown_name_is_not_found(ble_cp, nrf):
    a = ble_cp.CPBLEAdapter()
    with pytest.raises(NotFound, match="'nobody'"):
        a.connect("nobody", 300)


def test_short_writes_never_share_a_write_command(ble_cp, nrf):
    # PacketBuffer appends to an unsent packet: without the adapter's flush,
    # back-to-back small requests would go out glued together.
    a, link, client = connected_client(ble_cp)
    seqs = [client.send_request(0, 0, 0, {"d": "r%d" % i}) for i in range(6)]  # echo, pipelined
    for s in seqs:
        client.wait(s)
    sent = a._pb.sent[-6:]
    assert [len(p) for p in sent] == [len(sent[0])] * 6
    assert nrf.dropped_writes == 0


def test_response_over_many_notifications_arrives_whole(ble_cp, nrf):
    a, link, client = connected_client(ble_cp, rx_packets=8)
    text = "".join(chr(65 + i % 26) for i in range(1800))  # 4 notifications of 495 bytes
    assert client.echo(text) == text


def test_update_cycle_upload_test_reset_reconnect_confirm(ble_cp, nrf, image):
    a, link, client = connected_client(ble_cp)
    log = []
    with open(image, "rb") as f:
        info = verify(f)
        f.seek(0)
        res = Updater(client, log=log.append, connect_ms=3000, reset_wait_ms=10000).run(f, info)
    assert res.outcome == UPDATED, (res.message, log)
    assert nrf.running_version() == "2.0.0"
    assert [s for s in nrf.state() if s["active"]][0]["confirmed"]
    assert link.reconnects >= 1


def test_disconnect_mid_upload_reconnects_and_resumes(ble_cp, nrf, image):
    a, link, client = connected_client(ble_cp, timeout_ms=1000)
    nrf.disconnect_after_chunks(6)
    with open(image, "rb") as f:
        res = client.upload(f)
    assert nrf.connections == 2 and link.reconnects == 1
    assert [s for s in nrf.state() if s["slot"] == 1][0]["version"] == "2.0.0"
    assert nrf.events.count("upload-start") == 1
    assert res.chunks < 2 * (res.size // res.chunk_size + 1)
