"""Upload throughput: smpdfu vs PyPI smpclient vs mcumgr-toolkit, on the emulated nRF.

Each client uploads the same imgtool image to a fresh emulator (a new flash
file each time: nRF52840 flash timing, so the first chunk waits for the slot
erase) over its paced pty. Configurations: 115200 and 1,000,000 baud, each with
the emulator's default buf_size and with a larger one (2048). Afterwards the
image state list must show the image's hash in slot 1, so a client that is fast
but wrong is noticed.

Each client runs with its best settings: smpdfu with its defaults (chunks
sized from the device's buf_size, pipelined within buf_count); smpclient with
its default ``Auto`` fragmentation (messages up to buf_size - 4);
mcumgr-toolkit with ``use_auto_frame_size()``.

    python host_tests/bench/bench_upload.py [--size 65536] [--quick] [--only smpdfu,...] [--no-ble]

BLE rows: smpdfu (Bumble central) and smpclient (its Bumble transport) against
``smpdfu emulate --ble`` (smp_svr's BT overlay: MTU 498, reassembly, 2475-byte
buffers) at 1M and 2M PHY and 7.5/15/30 ms connection intervals, data length
251, beside the link's own ceiling for 495-byte writes (ble_timing.LinkTiming).

A benchmark, not a test: it prints a table and asserts nothing about time.
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
for p in (os.path.join(REPO, "lib"), os.path.join(REPO, "host"), os.path.join(REPO, "host_tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from imagegen import imgtool_verify, make_image  # noqa: E402

from smpdfu import mcuboot  # noqa: E402
from smpdfu.client import SMPClient  # noqa: E402
from smpdfu_host.emulator.process import EmulatorProcess  # noqa: E402
from smpdfu.transport import SerialTransport  # noqa: E402
from smpdfu.pyserial_uart import PySerialUART  # noqa: E402

CLIENTS = ("smpdfu", "smpclient", "mcumgr-toolkit")


# ---------------------------------------------------------------- clients

def smpdfu_client(port, baud, timeout_ms=5000):
    return SMPClient(SerialTransport(PySerialUART(port, baudrate=baud), max_packet=4096), timeout_ms=timeout_ms)


def run_smpdfu(port, baud, path, trace=False):
    """Upload with smpdfu in-process; returns (seconds, extra dict)."""
    c = smpdfu_client(port, baud)
    try:
        c.transport.reset()
        with open(path, "rb") as f:
            info = mcuboot.verify(f)
            f.seek(0)
            if trace:
                tracemalloc.start()
                tracemalloc.reset_peak()
            t0 = time.perf_counter()
            res = c.upload(f, info.file_size, sha=info.file_sha)
            dt = time.perf_counter() - t0
            extra = {"chunk": res.chunk_size, "window": res.window, "chunks": res.chunks,
                     "retries": res.retries}
            if trace:
                _cur, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                extra["peak"] = peak
        return dt, extra
    finally:
        c.transport.close()


def run_smpclient(port, baud, path):
    from smpclient import SMPClient as PyPISMPClient
    from smpclient.transport.serial import SMPSerialTransport

    with open(path, "rb") as f:
        data = f.read()

    async def go():
        transport = SMPSerialTransport(baudrate=baud)  # default: Auto (buf_size from params)
        async with PyPISMPClient(transport, port, timeout_s=5.0) as client:
            t0 = time.perf_counter()
            async for _off in client.upload(data):
                pass
            dt = time.perf_counter() - t0
            return dt, {"chunk": transport.max_unencoded_size}

    return asyncio.run(go())


def run_mcumgr_toolkit(port, baud, path):
    from mcumgr_toolkit import MCUmgrClient

    with open(path, "rb") as f:
        data = f.read()
    c = MCUmgrClient.serial(port, baud, 5000)
    c.use_auto_frame_size()
    t0 = time.perf_counter()
    c.image_upload(data)
    dt = time.perf_counter() - t0
    del c  # closes the port
    return dt, {}


RUNNERS = {"smpdfu": run_smpdfu, "smpclient": run_smpclient, "mcumgr-toolkit": run_mcumgr_toolkit}


# ---------------------------------------------------------------- BLE

BLE_LINKS = [(phy, interval) for phy in (1, 2) for interval in (7.5, 15, 30)]
BLE_CLIENTS = ("smpdfu", "smpclient")


def run_smpdfu_ble(emu, path):
    from smpdfu.ble import BLETransport
    from smpdfu_host.ble_bumble import BumbleAdapter

    c = SMPClient(BLETransport(BumbleAdapter(emu.hci), emu.name, max_packet=4096), timeout_ms=5000)
    try:
        with open(path, "rb") as f:
            info = mcuboot.verify(f)
            f.seek(0)
            t0 = time.perf_counter()
            res = c.upload(f, info.file_size, sha=info.file_sha)
            dt = time.perf_counter() - t0
        for s in c.image_state():
            if s.slot == 1:
                h = s.hash.hex()
        return dt, {"chunk": res.chunk_size, "window": res.window, "retries": res.retries, "hash": h}
    finally:
        c.transport.close()


def run_smpclient_ble(emu, path):
    from smpclient import SMPClient as PyPISMPClient
    from smpclient.requests.image_management import ImageStatesRead
    from smpclient.transport.bumble import SMPBumbleTransport

    with open(path, "rb") as f:
        data = f.read()

    async def go():
        transport = SMPBumbleTransport(hci=emu.hci)
        async with PyPISMPClient(transport, "F0:F1:F2:F3:F4:F5", timeout_s=10.0) as client:
            t0 = time.perf_counter()
            async for _off in client.upload(data):
                pass
            dt = time.perf_counter() - t0
            r = await client.request(ImageStatesRead())
            h = [bytes(i.hash).hex() for i in r.images if i.slot == 1]
            return dt, {"chunk": transport.max_unencoded_size, "hash": h[0] if h else None}

    return asyncio.run(go())


def ble_run(name, phy, interval, path, digest, workdir):
    flash = os.path.join(workdir, "flash-ble-%s-%d-%s.bin" % (name, phy, interval))
    emu = EmulatorProcess(["--ble", "--phy", phy, "--interval", interval], flash=flash, via_cli=True)
    try:
        dt, extra = (run_smpdfu_ble if name == "smpdfu" else run_smpclient_ble)(emu, path)
        extra["ok"] = extra.pop("hash") == digest
        if not extra["ok"]:
            extra["error"] = "slot 1 does not hold the image"
        return dt, extra
    except Exception as e:  # noqa: BLE001 - a failing client is a row, not a crash
        return None, {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    finally:
        emu.stop()
        try:
            os.remove(flash)
        except OSError:
            pass


def ble_rows(clients, path, digest, nbytes, workdir):
    """Upload over BLE at each PHY and interval; print and return the rows."""
    from smpdfu_host.emulator.ble_timing import LinkTiming

    rows = []
    for phy, interval in BLE_LINKS:
        ceiling = LinkTiming(phy, interval).ceiling(495) / 1000
        link = "BLE %dM PHY, %g ms, DLE 251" % (phy, interval)
        for name in clients:
            if name not in BLE_CLIENTS:
                continue
            dt, extra = ble_run(name, phy, interval, path, digest, workdir)
            extra["ceiling"] = "%.0f kB/s" % ceiling
            rows.append((name, link, nbytes, dt, nbytes / dt / 1000 if dt else None, extra))
            note = "" if extra.get("ok") else "FAILED: %s" % extra.get("error")
            print("  %-15s %-30s %s %s" % (name, link, "%.2f s" % dt if dt else "-", note), flush=True)
    return rows


def slot1_hash(port, baud):
    c = smpdfu_client(port, baud)
    try:
        c.wait_until_ready(5000)
        for s in c.image_state():
            if s.slot == 1:
                return s.hash.hex()
        return None
    finally:
        c.transport.close()


# ---------------------------------------------------------------- runs

def one_run(name, baud, buf_size, path, digest, workdir, emu_args, trace=False):
    flash = os.path.join(workdir, "flash-%s-%d-%s-%d.bin" % (name, baud, buf_size, time.monotonic_ns()))
    extra_args = list(emu_args)
    if buf_size:
        extra_args += ["--buf-size", str(buf_size)]
    emu = EmulatorProcess(extra_args, baud=baud, flash=flash, via_cli=True)
    try:
        if trace:
            dt, extra = run_smpdfu(emu.path, baud, path, trace=True)
        else:
            dt, extra = RUNNERS[name](emu.path, baud, path)
        h = slot1_hash(emu.path, baud)
        extra["ok"] = h == digest
        if h != digest:
            extra["error"] = "slot 1 hash %s, expected %s" % (h, digest)
        return dt, extra
    except Exception as e:  # noqa: BLE001 - a failing client is a row, not a crash
        return None, {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    finally:
        emu.stop()
        err = emu.stderr_text()
        try:
            os.remove(flash)
        except OSError:
            pass
        if err.strip() and os.environ.get("BENCH_VERBOSE"):
            sys.stderr.write(err)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=65536, help="image payload bytes (default 65536)")
    ap.add_argument("--quick", action="store_true", help="1,000,000 baud only")
    ap.add_argument("--only", default=",".join(CLIENTS), help="clients, comma-separated")
    ap.add_argument("--bauds", default=None, help="comma-separated baud rates (default 115200,1000000)")
    ap.add_argument("--buf-sizes", default="default,2048", help="emulator buf_size values ('default' = its own)")
    ap.add_argument("--emu-arg", action="append", default=[], help="extra emulator argument (repeatable)")
    ap.add_argument("--no-ble", action="store_true", help="no BLE rows")
    ap.add_argument("--ble-only", action="store_true", help="only the BLE rows")
    args = ap.parse_args(argv)

    clients = [c for c in args.only.split(",") if c]
    for c in clients:
        if c not in RUNNERS:
            ap.error("unknown client %r (one of %s)" % (c, ", ".join(CLIENTS)))
    bauds = [int(b) for b in (args.bauds or ("1000000" if args.quick else "115200,1000000")).split(",")]
    bufs = [None if b == "default" else int(b) for b in args.buf_sizes.split(",")]

    work = tempfile.mkdtemp(prefix="smpdfu-bench-")
    path = make_image(os.path.join(work, "app.bin"), version="1.1.0", size=args.size, seed=42)
    digest = imgtool_verify(path).digest
    nbytes = os.path.getsize(path)
    print("image: %s, %d bytes, hash %s" % (path, nbytes, digest))
    print("emulator: nRF52840 flash timing, fresh flash file per run\n")

    rows = []
    results = {}
    for baud in ([] if args.ble_only else bauds):
        for buf in bufs:
            link = "%d baud, buf_size %s" % (baud, buf or "default")
            for name in clients:
                dt, extra = one_run(name, baud, buf, path, digest, work, args.emu_arg)
                results[(baud, buf, name)] = dt if extra.get("ok") else None
                rate = nbytes / dt / 1000 if dt else None
                rows.append((name, link, nbytes, dt, rate, extra))
                note = "" if extra.get("ok") else "FAILED: %s" % extra.get("error")
                print("  %-15s %-30s %s %s" % (name, link, "%.2f s" % dt if dt else "-", note), flush=True)

    if not args.no_ble:
        rows += ble_rows(clients, path, digest, nbytes, work)

    print()
    hdr = ("client", "link", "bytes", "seconds", "kB/s", "details")
    table = []
    for name, link, n, dt, rate, extra in rows:
        det = " ".join("%s=%s" % (k, extra[k]) for k in ("chunk", "window", "retries", "ceiling") if k in extra)
        if not extra.get("ok"):
            det = "FAILED " + extra.get("error", "")
        table.append((name, link, str(n), "%.2f" % dt if dt else "-", "%.1f" % rate if rate else "-", det))
    widths = [max(len(r[i]) for r in [hdr] + table) for i in range(len(hdr))]
    for r in [hdr] + table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())

    print("\nspeed ratio (throughput of smpdfu / other; > 1 means smpdfu is faster):")
    for baud in bauds:
        for buf in bufs:
            mine = results.get((baud, buf, "smpdfu"))
            parts = []
            for other in ("smpclient", "mcumgr-toolkit"):
                theirs = results.get((baud, buf, other))
                if mine and theirs:
                    parts.append("smpdfu/%s %.2f" % (other, theirs / mine))
            if parts:
                print("  %d baud, buf_size %s: %s" % (baud, buf or "default", ", ".join(parts)))
    ble = dict(((name, link), dt) for name, link, _n, dt, _r, extra in rows
               if link.startswith("BLE") and extra.get("ok"))
    for (name, link), mine in sorted(ble.items()):
        theirs = ble.get(("smpclient", link))
        if name == "smpdfu" and mine and theirs:
            print("  %s: smpdfu/smpclient %.2f" % (link, theirs / mine))

    if "smpdfu" in clients and not args.ble_only:
        dt, extra = one_run("smpdfu", max(bauds), bufs[0], path, digest, work, args.emu_arg, trace=True)
        if "peak" in extra:
            print("\nsmpdfu upload peak Python memory (tracemalloc, %d baud): %.1f KiB for a %d-byte image"
                  % (max(bauds), extra["peak"] / 1024, nbytes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
