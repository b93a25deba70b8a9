"""The emulated nRF behind its pty: update cycles, persistence, timing and transport faults."""

import io
import time

import pytest

from imagegen import make_image
from smpdfu.mcuboot import verify

from emulator.fixtures import emu_factory, fast_emu, proc_factory  # noqa: F401
from emulator.smpwire import READ, WRITE, WireClient, packet


@pytest.fixture(scope="module")
def imgs(tmp_path_factory):
    d = tmp_path_factory.mktemp("emuimg")
    out = {}
    for name, ver, size in (("v2", "2.0.0", 8000), ("v3", "3.0.0", 5000)):
        with open(make_image(d / (name + ".bin"), version=ver, size=size, seed=size), "rb") as f:
            out[name] = f.read()
    return out


def h(img):
    return verify(io.BytesIO(img)).hash


def flags(e):
    return "".join(c for c, k in (("B", "bootable"), ("P", "pending"), ("C", "confirmed"),
                                  ("A", "active"), ("X", "permanent")) if e.get(k))


def table(images):
    return [(e["slot"], e["version"], flags(e)) for e in images]


@pytest.fixture
def client(fast_emu):
    c = WireClient(fast_emu.path)
    yield c
    c.close()


def test_update_cycle_confirm(fast_emu, client, imgs):
    emu, v2 = fast_emu, imgs["v2"]
    assert client.upload(v2) == {"off": len(v2), "match": True}
    st = client.state()
    assert st[1]["hash"] == h(v2) and table(st) == [(0, "1.0.0", "BCA"), (1, "2.0.0", "B")]
    assert table(client.test(h(v2))["images"])[1] == (1, "2.0.0", "BP")
    assert client.reset() == {}
    emu.wait_event("boot", after=1)
    assert client.wait_up()
    assert table(client.state()) == [(0, "2.0.0", "BA"), (1, "1.0.0", "BC")]
    assert client.request(READ, 0, 7, {"format": "v"})[1] == {"output": "2.0.0"}
    assert table(client.confirm()["images"]) == [(0, "2.0.0", "BCA"), (1, "1.0.0", "B")]
    client.reset()
    emu.wait_event("boot", after=2)
    assert client.wait_up()
    assert table(client.state()) == [(0, "2.0.0", "BCA"), (1, "1.0.0", "B")]
    kinds = [e[1] for e in emu.events]
    assert "upload-done" in kinds and "test" in kinds and "confirm" in kinds
    assert [e[2]["percent"] for e in emu.events if e[1] == "upload-progress"][-1] == 100


def test_revert_and_permanent(fast_emu, client, imgs):
    emu, v2, v3 = fast_emu, imgs["v2"], imgs["v3"]
    client.upload(v2)
    client.test(h(v2))
    client.reset()
    emu.wait_event("boot", after=1)
    assert client.wait_up()
    emu.reset()  # no confirm: MCUboot reverts
    assert emu.wait_event("boot", after=2)["action"] == "revert"
    assert client.wait_up()
    assert table(client.state()) == [(0, "1.0.0", "BCA"), (1, "2.0.0", "B")]
    client.upload(v3)
    assert table(client.test(h(v3), confirm=True)["images"])[1] == (1, "3.0.0", "BPX")
    client.reset()
    emu.wait_event("boot", after=3)
    assert client.wait_up()
    assert table(client.state()) == [(0, "3.0.0", "BCA"), (1, "1.0.0", "B")]


def test_state_persists_across_process_restart(tmp_path, proc_factory, imgs):
    flash = tmp_path / "nrf.bin"
    p = proc_factory("--flash", flash)
    c = WireClient(p.path)
    c.upload(imgs["v2"])
    c.test(h(imgs["v2"]))
    c.close()
    p.stop()
    # a new process is a power cycle: MCUboot finds the test request in the trailers
    p2 = proc_factory("--flash", flash)
    p2.wait_line("swap type test, swap")
    assert "factory" not in " ".join(p2.lines)
    c = WireClient(p2.path)
    assert table(c.state()) == [(0, "2.0.0", "BA"), (1, "1.0.0", "BC")]
    c.close()
    p2.stop()
    p3 = proc_factory("--flash", flash)  # power cycle without confirm: revert
    p3.wait_line("swap type revert")
    assert p3.running_version() == "1.0.0"


def test_reset_mid_upload_loses_ram_state(fast_emu, client, imgs):
    v2 = imgs["v2"]
    fast_emu.reset_after_chunks(3)
    r = None
    for off in (0, 240, 480):
        body = {"off": off, "data": v2[off:off + 240]}
        if off == 0:
            body.update(len=len(v2), sha=b"\x11" * 32)
        r = client.request(WRITE, 1, 1, body, timeout=0.5)
    assert r is None  # the 3rd chunk was written, then the device reset before answering
    fast_emu.wait_event("boot", after=1)
    assert client.wait_up()
    # same sha again: no resume, the upload starts over at 0
    r = client.request(WRITE, 1, 1, {"off": 720, "data": v2[720:960]})
    assert r[1] == {"off": 0}


def test_dropped_and_corrupted_lines_get_no_response(fast_emu, client):
    assert client.echo("a") == "a"
    fast_emu.drop_rx_lines(1)
    assert client.echo("b", timeout=0.4) is None
    fast_emu.corrupt_rx_lines(1)
    assert client.echo("c", timeout=0.4) is None
    assert client.echo("d") == "d"
    assert fast_emu.counters()["frames_bad"] == 1
    # a long request: drop its second line
    fast_emu.drop_rx_lines(0)
    body = {"d": "x" * 200}
    client.send_packet(packet(READ, 0, 0, body, 9))
    assert client.read_packet(1)[1] == {"r": "x" * 200}
    fast_emu.delay_responses(400)
    assert client.echo("late", timeout=0.1) is None
    assert client.read_packet(1.0)[1] == {"r": "late"}
    fast_emu.drop_tx_lines(1)
    assert client.echo("e", timeout=0.4) is None
    fast_emu.corrupt_tx_lines(1)
    assert client.echo("f", timeout=0.4) is None
    assert client.echo("g") == "g"


def test_line_buffer_overflow_drops_lines(fast_emu, client):
    fast_emu.stall_rx(300)  # the decoder is busy: received lines wait in the 2 line buffers
    frames = b"".join(client.framed(packet(READ, 0, 0, {"d": "n%d" % i}, 40 + i)) for i in range(4))
    client.send_raw(frames)
    got = []
    while True:
        r = client.read_packet(0.8)
        if r is None:
            break
        got.append(r[1]["r"])
    assert got == ["n0", "n1"]  # 1-line requests: two fit the buffers, the rest are dropped
    assert fast_emu.counters()["lines_dropped_no_buffer"] == 2


def test_too_long_line_and_oversize_request_dropped(fast_emu, client):
    client.send_raw(b"\x06\x09" + b"A" * 200 + b"\n")
    big = packet(READ, 0, 0, {"d": "y" * 390}, 5)  # > buf_size 384
    client.send_packet(big)
    assert client.read_packet(0.5) is None
    c = fast_emu.counters()
    assert c["lines_dropped_too_long"] == 1 and c["frames_too_big"] == 1
    assert client.echo("ok") == "ok"


def test_log_lines_interleaved_are_skipped(fast_emu, client):
    fast_emu.log_every(5)
    end = time.monotonic() + 0.5
    i = 0
    while time.monotonic() < end:
        assert client.echo("m%d" % i) == "m%d" % i
        i += 1
    assert fast_emu.counters()["log_lines"] >= 3
    assert client.raw.count(b"<inf> app: heartbeat") >= 2


def test_pipelined_requests_limited_by_netbufs(emu_factory):
    emu = emu_factory(buf_count=2, line_bufs=8)
    c = WireClient(emu.path)
    emu.stall_rx(200)
    c.send_raw(b"".join(c.framed(packet(READ, 0, 0, {"d": "p%d" % i}, 60 + i)) for i in range(5)))
    got = []
    while True:
        r = c.read_packet(0.8)
        if r is None:
            break
        got.append(r[1])
    # 2 net_bufs: one request queued, the next frame finds no buffer (or the reply gets ENOMEM)
    assert len(got) < 5 and {"rc": 2} in got  # ENOMEM: the rx context took the response buffer
    assert emu.counters()["netbuf_failures"] >= 1
    c.close()


def test_paced_at_115200(emu_factory):
    emu = emu_factory(baud=115200)
    c = WireClient(emu.path, 115200)
    text = "z" * 250
    c.echo("warm")
    t = time.monotonic()
    assert c.echo(text) == text
    dt = time.monotonic() - t
    # request ~ 2 lines and response ~ 3 lines at 11520 bytes/s: at least ~60 ms
    assert dt > 0.05
    c.close()


def test_flash_timing_first_chunk_erase(emu_factory, imgs):
    emu = emu_factory(flash_speed=0.5, slot_size=0x10000, factory_size=8000)
    c = WireClient(emu.path)
    v2 = imgs["v2"]
    t = time.monotonic()
    r = c.request(WRITE, 1, 1, {"off": 0, "data": v2[:200], "len": len(v2)}, timeout=10)
    fast = time.monotonic() - t
    assert r[1] == {"off": 200}  # slot 1 was empty: nothing to erase
    c.request(WRITE, 1, 1, {"off": 200, "data": v2[200:400]})
    t = time.monotonic()
    r = c.request(WRITE, 1, 1, {"off": 0, "data": v2[:200], "len": len(v2), "sha": b"\1" * 32}, timeout=10)
    slow = time.monotonic() - t
    # not empty now: 2 image pages + the trailer page, 85 ms each at speed 0.5 = 128 ms
    assert r[1] == {"off": 200} and slow > 0.12 and slow > fast
    t = time.monotonic()
    assert c.request(WRITE, 1, 5, {}, timeout=10)[1] == {}  # image erase: the whole slot, 16 pages
    assert time.monotonic() - t > 16 * 0.085 * 0.5 * 0.95
    c.close()


def test_v1_mode_is_named_after_what_it_imitates(capsys):
    # issue 9: it imitates the legacy rc behaviour answering as SMP v1, not Zephyr 3.2.0
    from smpdfu_host.emulator.cli import build_parser, config_from_args

    p = build_parser()
    assert config_from_args(p.parse_args(["--v1-legacy-rc"])).v1_only is True
    assert config_from_args(p.parse_args([])).v1_only is False
    p.print_help()
    text = " ".join(capsys.readouterr().out.split())
    assert "--v1-legacy-rc" in text and "not a model of an older release" in text
    assert "older Zephyr" not in text
