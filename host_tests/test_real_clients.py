"""Real PyPI SMP clients against ``python -m smpdfu_host.emulator`` (a subprocess on a pty).

smpclient (library), smpmgr (CLI) and mcumgr-toolkit (Rust, via Python bindings).
"""

import asyncio
import hashlib
import io
import os
import subprocess
import sys

import pytest

from imagegen import make_image
from smpdfu.mcuboot import verify

from emulator.fixtures import proc_factory  # noqa: F401

BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="module")
def v2(tmp_path_factory):
    p = make_image(tmp_path_factory.mktemp("rc") / "v2.bin", version="2.0.0", size=7000, seed=5)
    with open(p, "rb") as f:
        return p, f.read()


def image_hash(data):
    return verify(io.BytesIO(data)).hash


def flags(e):
    return "".join(c for c, k in (("B", "bootable"), ("P", "pending"), ("C", "confirmed"),
                                  ("A", "active"), ("X", "permanent")) if getattr(e, k, None))


def run_smpclient(port, baud, coro_fn):
    from smpclient import SMPClient
    from smpclient.transport.serial import SMPSerialTransport

    async def main():
        async with SMPClient(SMPSerialTransport(baudrate=baud), port, timeout_s=3.0) as client:
            return await coro_fn(client)

    return asyncio.run(asyncio.wait_for(main(), 60))


def test_smpclient_echo_params_upload_state_test(proc_factory, v2):
    from smpclient.requests.image_management import ImageStatesRead, ImageStatesWrite
    from smpclient.requests.os_management import EchoWrite, MCUMgrParametersRead

    path, data = v2
    p = proc_factory()

    async def flow(client):
        out = {}
        out["echo"] = (await client.request(EchoWrite(d="hello"))).r
        prm = await client.request(MCUMgrParametersRead())
        out["params"] = (prm.buf_size, prm.buf_count)
        offs = [off async for off in client.upload(data)]
        out["last_off"] = offs[-1]
        st = await client.request(ImageStatesRead())
        out["state"] = [(i.slot, i.version, bytes(i.hash)) for i in st.images]
        st = await client.request(ImageStatesWrite(hash=image_hash(data), confirm=False))
        out["test"] = [(i.slot, i.pending) for i in st.images]
        return out

    out = run_smpclient(p.path, 1000000, flow)
    assert out["echo"] == "hello"
    assert out["params"] == (384, 4)
    assert out["last_off"] == len(data)
    assert out["state"][1] == (1, "2.0.0", image_hash(data))
    assert out["test"] == [(0, False), (1, True)]
    p.wait_line("upload-done")
    assert "match=True" in p.wait_line("upload-done")


def test_smpclient_at_115200(proc_factory):
    from smpclient.requests.os_management import EchoWrite, OSApplicationInfoRead

    p = proc_factory("--baud", "115200")

    async def flow(client):
        r = await client.request(EchoWrite(d="x" * 200))
        info = await client.request(OSApplicationInfoRead(format="sv"))
        return r.r, info.output

    echo, info = run_smpclient(p.path, 115200, flow)
    assert echo == "x" * 200 and info == "Zephyr 1.0.0"


SMPMGR_OPTS = ["--baudrate", "1000000", "--timeout", "3"]


def smpmgr(port, *args, timeout=60):
    """The real ``smpmgr`` executable (a subprocess)."""
    cmd = [os.path.join(BIN, "smpmgr"), "--port", port] + SMPMGR_OPTS
    r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, COLUMNS="200", NO_COLOR="1", TERM="dumb"))
    return r.returncode, r.stdout + r.stderr


def smpmgr_inproc(port, *args):
    """The same smpmgr CLI app, invoked in-process (saves its ~2 s start-up per call)."""
    from smpmgr.main import app
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["--port", port] + SMPMGR_OPTS + list(args),
                           env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})
    return r.exit_code, r.output


def test_smpmgr_cli(proc_factory, v2):
    path, data = v2
    p = proc_factory()
    rc, out = smpmgr(p.path, "os", "echo", "hi")
    assert rc == 0 and "hi" in out, out
    rc, out = smpmgr_inproc(p.path, "image", "upload", str(path))
    assert rc == 0, out
    p.wait_line("upload-done")
    rc, out = smpmgr_inproc(p.path, "image", "state-read")
    assert rc == 0 and "2.0.0" in out and "1.0.0" in out, out
    rc, out = smpmgr_inproc(p.path, "image", "state-write", image_hash(data).hex())
    assert rc == 0, out
    p.wait_line("test ")


def test_mcumgr_toolkit_firmware_update_and_confirm(proc_factory, v2):
    from mcumgr_toolkit import MCUmgrClient

    path, data = v2
    p = proc_factory()
    c = MCUmgrClient.serial(p.path, 1000000, 3000)
    assert c.os_echo("ping") == "ping"
    prm = c.os_mcumgr_parameters()
    assert (prm.buf_size, prm.buf_count) == (384, 4)
    assert [(s.slot, s.version, s.active) for s in c.image_get_state()] == [(0, "1.0.0", True)]
    c.firmware_update(data, checksum=hashlib.sha256(data).digest())
    p.wait_line("boot: swap type test, swap, running 2.0.0")
    st = None
    for _ in range(20):
        try:
            st = c.image_get_state()
            break
        except Exception:
            pass
    assert [(s.slot, s.version, flags(s)) for s in st] == [(0, "2.0.0", "BA"), (1, "1.0.0", "BC")]
    st = c.image_set_state(confirm=True)
    assert [(s.slot, s.version, flags(s)) for s in st] == [(0, "2.0.0", "BCA"), (1, "1.0.0", "B")]
    assert c.os_application_info("v") == "2.0.0"
