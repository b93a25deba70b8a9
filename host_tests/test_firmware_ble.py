"""The on-board app with ``TRANSPORT = "ble"``: the board configs of the Pico W
(MicroPython ``bluetooth``) and the Feather nRF52840 (CircuitPython
``adafruit_ble``) update the emulated nRF over BLE, their adapters' own code
running on Bumble doubles of the two radio APIs. And a UART board loads none
of the BLE code.
"""

import sys

import pytest

from boardble.fixtures import emu_factory, image, nrf, use_bleio, use_bluetooth, world  # noqa: F401  (fixtures)
from firmware_helpers import Log, listing, load_app, load_board, place_image

BLE_OPTS = dict(TRANSPORT="ble", BLE_TARGET="smp-nrf", LED=None, CONNECT_MS=5000, RESET_WAIT_MS=10000)


@pytest.mark.parametrize("board,hw,pair", [("pico_w", "machine", False), ("esp32_devkit", "machine", True),
                                           ("feather_nrf52840", "busio", True)])
def test_board_updates_the_neighbour_over_ble(tmp_path, monkeypatch, world, emu_factory, image, board, hw,  # noqa: F811
                                             pair):
    nrf = emu_factory(encrypt=pair)  # with BLE_PAIR: an nRF whose SMP service needs an encrypted link
    if hw == "busio":
        use_bleio(monkeypatch, world, nrf)
    else:
        use_bluetooth(monkeypatch, world, nrf)
    encrypted = []  # the peripheral's view of each link
    nrf.device.on("connection", lambda c: c.on("connection_encryption_change",
                                                lambda *a: encrypted.append(c.is_encrypted)))
    app = load_app()
    cfg = load_board(board, tmp_path, **dict(BLE_OPTS, BLE_PAIR=pair))
    place_image(cfg, image)
    log = Log()
    res = app.run(cfg, hw, log=log)
    assert res.outcome == "updated", log.text()
    assert encrypted == ([True] * nrf.event_count("ble-connect") if pair else [])
    assert nrf.running_version() == "2.0.0"
    assert [s for s in nrf.state() if s["active"]][0]["confirmed"]
    assert nrf.event_count("ble-connect") >= 2  # the test boot dropped the link; the app came back
    assert listing(cfg) == ["app.bin.done", "status.json"]


def test_neighbour_not_found_keeps_the_image(tmp_path, monkeypatch, world, nrf, image):  # noqa: F811
    use_bluetooth(monkeypatch, world, nrf)
    app = load_app()
    cfg = load_board("pico_w", tmp_path, **dict(BLE_OPTS, BLE_TARGET="other-nrf", CONNECT_MS=300))
    place_image(cfg, image)
    log = Log()
    res = app.run(cfg, "machine", log=log)
    assert res.outcome == "failed" and res.transient
    assert "cannot open the BLE link" in res.message and "'other-nrf'" in res.message
    assert listing(cfg) == ["app.bin", "status.json"]  # kept for the next boot


def test_uart_board_imports_no_ble_code(tmp_path, monkeypatch, image):
    for name in ("smpdfu.ble", "smpdfu.ble_mp", "smpdfu.ble_cp", "smpdfu.ble_target"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    app = load_app()
    cfg = load_board("pico_w", tmp_path, LED=None)
    place_image(cfg, image)
    res = app.run(cfg, "machine", log=Log())  # no machine.UART on CPython: fails at opening it
    assert "cannot open the UART" in res.message
    assert not [n for n in sys.modules if n.startswith("smpdfu.ble")]
