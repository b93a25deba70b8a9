"""Run smpdfu.fota_download once, on CPython or MicroPython; print events and the outcome.

    python|micropython run_download.py '{"url": ..., "out": ..., ...}'

Keys: ``url`` (image or, with ``"manifest": true``, manifest URL), ``target``
(``"record"``: the RecordTarget double writing ``out``, the default;
``"file"``: FileTarget(``out``); ``"smp"``: SMPTarget to the emulated nRF on
the pty ``pty``, ``"schedule": true`` marks it for test), ``sha`` (hex), ``size``, ``ca`` (path of a PEM
file, or false), ``retries``, ``timeout_ms``, ``backoff_ms``, ``cancel_at``
(percent), ``mem`` (print the peak live heap on MicroPython).
Output lines: ``event NAME VALUE``, then ``ok VERSION SIZE WRITTEN INITS``
(after ``held N skipped M`` for the other targets: where an SMP target's
neighbour stood, bytes not fed to it) or ``error TYPE: MESSAGE``; ``peak N`` with ``mem``.
"""

import gc
import json
import sys

from smpdfu import fota_download

from recordtarget import RecordTarget

spec = json.loads(sys.argv[1])
ca = spec.get("ca")
if ca:
    with open(ca, "rb") as f:
        ca = f.read()
url, sha, size = spec["url"], spec.get("sha"), spec.get("size")
if spec.get("manifest"):
    m = fota_download.fetch_manifest(url, ca=ca, timeout_ms=spec.get("timeout_ms", 10000))
    print("manifest %s %d %s" % (m.url, m.size, m.version))
    url, sha, size = m.url, m.sha256, m.size
mem = spec.get("mem") and hasattr(gc, "mem_alloc")
peak = [0]
cancel_at = spec.get("cancel_at")


def events(name, value):
    if mem:
        gc.collect()
        peak[0] = max(peak[0], gc.mem_alloc())
    if name != "progress" or value % 25 == 0 or value == 100:
        print("event %s %s" % (name, value if name != "finished" else value.version_str))
    if cancel_at is not None and name == "progress" and value >= cancel_at:
        return False
    return None


def make_target():
    kind = spec.get("target", "record")
    if kind == "record":
        return RecordTarget(spec["out"])
    if kind == "file":
        from smpdfu.dfu_file import FileTarget

        return FileTarget(spec["out"])
    # "smp": the emulated nRF on the pty spec["pty"]
    from smpdfu.client import SMPClient
    from smpdfu.dfu_smp import SMPTarget
    from smpdfu.transport import SerialTransport

    if sys.implementation.name == "micropython":
        from unixserial import UnixSerial

        uart = UnixSerial(spec["pty"])
    else:
        from smpdfu.pyserial_uart import PySerialUART

        uart = PySerialUART(spec["pty"], 1000000)
    return SMPTarget(SMPClient(SerialTransport(uart), timeout_ms=3000))


target = make_target()
if mem:
    gc.collect()
    peak[0] = gc.mem_alloc()
try:
    info = fota_download.download(url, target, sha=sha, size=size, progress=events,
                                  retries=spec.get("retries", 5), timeout_ms=spec.get("timeout_ms", 10000),
                                  ca=ca, backoff_ms=spec.get("backoff_ms", 50))
    if isinstance(target, RecordTarget):
        print("ok %s %d %d %d" % (info.version_str, target.size, target.written, len(target.inits)))
    else:
        print("held %d skipped %d" % (getattr(target, "resumed_from", 0), getattr(target, "skipped", 0)))
        print("ok %s %d" % (info.version_str, info.file_size))
        if spec.get("schedule"):
            target.schedule_update()
            print("scheduled %s" % info.hash_hex())
except Exception as e:  # noqa: BLE001 - the test reads the line
    print("error %s: %s" % (type(e).__name__, e))
if mem:
    print("peak %d" % peak[0])
