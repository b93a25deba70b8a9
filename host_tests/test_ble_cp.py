"""The CircuitPython BLE adapter (lib/smpdfu/ble_cp.py), its own code, with the
real ``adafruit_ble`` from PyPI on a Bumble-backed ``_bleio``
(host_tests/boardble), with the portable BLETransport, against the emulated nRF
over BLE: scan/connect, the full update cycle, faults.
"""

import importlib

import pytest

from boardble import bumble_bleio, scenarios
from boardble.fixtures import emu_factory, image, nrf, use_bleio, world  # noqa: F401  (fixtures; nrf needs emu_factory)
from smpdfu.ble import BLETransport, NotFound
from smpdfu.client import SMPClient
from smpdfu.errors import LinkError


@pytest.fixture
def board(world, monkeypatch):  # noqa: F811
    """``connect(emu, ...)``: the board's radio reaching ``emu``, ``smpdfu.ble_cp``
    on adafruit_ble on the Bumble ``_bleio``, a CPBLEAdapter, a BLETransport, an SMPClient."""

    radios = {}

    def connect(emu, target="smp-nrf", timeout_ms=3000, reassembly=None, connect_ms=5000, **kw):
        if emu not in radios:  # one board radio per emulated nRF
            radios[emu] = use_bleio(monkeypatch, world, emu)
        ble_cp = importlib.import_module("smpdfu.ble_cp")
        assert ble_cp._bleio is bumble_bleio
        a = ble_cp.CPBLEAdapter(**kw)
        return SMPClient(BLETransport(a, target, reassembly, connect_ms=connect_ms), timeout_ms=timeout_ms)

    return connect


@pytest.mark.parametrize("target", ["smp-nrf", "F0:F1:F2:F3:F4:F5", None])
def test_connect_by_name_address_or_service(board, nrf, target):
    client = board(nrf, target)
    a = client.transport.adapter
    assert a.connected
    assert a.mtu == 498  # min(CircuitPython's 512, smp_svr's 498)
    assert client.echo("hello") == "hello"
    a.disconnect()
    assert not a.connected


def test_unknown_name_is_not_found(board, nrf):
    with pytest.raises(NotFound, match="'nobody'"):
        board(nrf, "nobody", connect_ms=300)


@pytest.mark.parametrize("flush", [True, False], ids=["flush", "no-flush"])
def test_short_writes_never_share_a_write_command(board, nrf, monkeypatch, flush):
    # PacketBuffer appends to an unsent packet: unless the adapter waits for it
    # to leave, back-to-back small requests would go out glued into one Write
    # Command. A port whose PacketBuffer has no flush(): it waits two intervals.
    if not flush:
        monkeypatch.delattr(bumble_bleio.PacketBuffer, "flush")
    client = board(nrf)
    seqs = [client.send_request(0, 0, 0, {"d": "r%d" % i}) for i in range(3)]  # echo, pipelined (3 of the 4 net_bufs)
    for s in seqs:
        client.wait(s)
    sent = client.transport.adapter._pb.sent[-3:]
    assert [len(p) for p in sent] == [len(sent[0])] * 3


def test_response_over_many_notifications_arrives_whole(board, nrf):
    client = board(nrf, reassembly=True)
    scenarios.echo_round_trip(client, nrf, "".join(chr(65 + i % 26) for i in range(1800)))


def test_update_cycle_upload_test_reset_reconnect_confirm(board, nrf, image):
    scenarios.update_cycle(board(nrf), nrf, image)


def test_disconnect_mid_upload_reconnects_and_resumes(board, nrf, image):
    scenarios.disconnect_mid_upload(board(nrf, timeout_ms=1000), nrf, image)


def test_lost_notification_is_retried(board, nrf, image):
    scenarios.lost_notification(board(nrf, timeout_ms=500), nrf, image)


def test_pairing_encrypts_the_link(board, emu_factory):  # noqa: F811
    nrf = emu_factory(encrypt=True)  # MCUMGR_TRANSPORT_BT_PERM_RW_ENCRYPT: the CCC and writes need it
    with pytest.raises(LinkError):
        board(nrf)  # without pairing, subscribing is refused
    client = board(nrf, pair=True)
    assert client.transport.adapter._conn.paired
    assert nrf.conn.is_encrypted  # the peripheral's side of the link
    assert client.echo("sealed") == "sealed"
