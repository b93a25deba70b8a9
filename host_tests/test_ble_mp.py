"""The MicroPython BLE adapter (lib/smpdfu/ble_mp.py), its own code, on CPython
through a Bumble-backed ``bluetooth`` module (host_tests/boardble), with the
portable BLETransport, against the emulated nRF over BLE: scan/connect, the
full update cycle, faults. (Its logic on real MicroPython:
portable/test_ble_mp_portable.py.)
"""

import errno

import pytest

from boardble import bumble_bluetooth, scenarios
from boardble.fixtures import emu_factory, image, nrf, use_bluetooth, world  # noqa: F401  (fixtures; nrf needs emu_factory)
from smpdfu.ble import BLETransport, NotFound
from smpdfu.client import SMPClient
from smpdfu.errors import LinkError


@pytest.fixture
def board(world, monkeypatch):  # noqa: F811
    """``connect(emu, ...)``: the board's radio reaching ``emu``, an MPBLEAdapter
    on it through ``import bluetooth``, a BLETransport, an SMPClient."""

    radios = {}

    def connect(emu, target="smp-nrf", timeout_ms=3000, radio=None, reassembly=None, connect_ms=5000, **kw):
        if emu not in radios:  # one board radio per emulated nRF
            radios[emu] = use_bluetooth(monkeypatch, world, emu, **(radio or {}))
        from smpdfu.ble_mp import MPBLEAdapter

        a = MPBLEAdapter(**kw)
        return SMPClient(BLETransport(a, target, reassembly, connect_ms=connect_ms), timeout_ms=timeout_ms)

    return connect


@pytest.mark.parametrize("target", ["smp-nrf", "F0:F1:F2:F3:F4:F5", None])
def test_connect_by_name_address_or_service(board, nrf, target):
    client = board(nrf, target)
    a = client.transport.adapter
    assert a.connected
    assert a.mtu == 498  # min(ours 512, smp_svr's 498)
    assert client.echo("hello") == "hello"
    a.disconnect()
    assert not a.connected
    assert not bumble_bluetooth.BLE()._conns


def test_unknown_name_is_not_found(board, nrf):
    with pytest.raises(NotFound, match="'nobody'"):
        board(nrf, "nobody", connect_ms=300)


def test_response_over_many_notifications_arrives_whole(board, nrf):
    # A 23-byte MTU: 20-byte writes and notifications, ~31 of each for this
    # echo; the ring keeps every notification (aioble's 1-deep queue would not).
    client = board(nrf, mtu=23, rx_slots=40, reassembly=True)
    assert client.transport.adapter.mtu == 23
    scenarios.echo_round_trip(client, nrf, "".join(chr(65 + i % 26) for i in range(600)))
    assert client.transport.adapter.dropped == 0


@pytest.mark.parametrize("full_errno", [errno.ENOMEM, errno.EALREADY], ids=["nimble", "btstack"])
def test_full_controller_queue_is_waited_on(board, nrf, full_errno):
    client = board(nrf, radio=dict(tx_queue=1, full_errno=full_errno), reassembly=True)
    scenarios.echo_round_trip(client, nrf, "x" * 1500)  # 4 writes against a queue of one
    assert bumble_bluetooth.BLE().full > 0


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
    assert client.transport.adapter.encrypted
    assert nrf.conn.is_encrypted  # the peripheral's side of the link
    assert client.echo("sealed") == "sealed"
