"""Run smpdfu.fota_download once, on CPython or MicroPython; print events and the outcome.

    python|micropython run_download.py '{"url": ..., "out": ..., ...}'

Keys: ``url`` (image or, with ``"manifest": true``, manifest URL), ``out``
(the RecordTarget file), ``sha`` (hex), ``size``, ``ca`` (path of a PEM
file, or false), ``retries``, ``timeout_ms``, ``backoff_ms``, ``cancel_at``
(percent), ``mem`` (print the peak live heap on MicroPython).
Output lines: ``event NAME VALUE``, then ``ok VERSION SIZE WRITTEN INITS``
or ``error TYPE: MESSAGE``; ``peak N`` with ``mem``.
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


target = RecordTarget(spec["out"])
if mem:
    gc.collect()
    peak[0] = gc.mem_alloc()
try:
    info = fota_download.download(url, target, sha=sha, size=size, progress=events,
                                  retries=spec.get("retries", 5), timeout_ms=spec.get("timeout_ms", 10000),
                                  ca=ca, backoff_ms=spec.get("backoff_ms", 50))
    print("ok %s %d %d %d" % (info.version_str, target.size, target.written, len(target.inits)))
except Exception as e:  # noqa: BLE001 - the test reads the line
    print("error %s: %s" % (type(e).__name__, e))
if mem:
    print("peak %d" % peak[0])
