"""Tests of the MicroPython harness itself (host_tests/mp + _portable).

They use small throw-away test directories, never the real portable suite
(`make test` runs that separately, so its failures stay readable).
"""

import os
import select
import subprocess
import sys
import textwrap
import time
import tty

import pytest

import _portable


def _write(d, name, src):
    p = d / name
    p.write_text(textwrap.dedent(src))
    return p


def _last_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ------------------------------------------------------------------ runner


def test_failing_test_fails_the_run(tmp_path, run_mp_tests):
    _write(
        tmp_path,
        "test_bad.py",
        """
        def test_wrong_sum():
            x = 1 + 1
            assert x == 3, "sum was %d" % x
        """,
    )
    r = run_mp_tests(tmp_path)
    assert r.returncode != 0
    assert _last_line(r.stdout) == "0 passed, 1 failed"
    assert "FAIL " in r.stdout and "test_bad.py::test_wrong_sum" in r.stdout
    # the MicroPython traceback is shown, with the assertion message
    assert "AssertionError: sum was 2" in r.stdout
    assert 'test_bad.py", line 4, in test_wrong_sum' in r.stdout


def test_pass_skip_and_real_micropython(tmp_path, run_mp_tests):
    _write(
        tmp_path,
        "test_mixed.py",
        """
        import sys
        from _portable import skip, on_micropython
        from smpdfu import compat

        def test_runs_on_micropython_with_lib():
            assert sys.implementation.name == "micropython"
            assert on_micropython()
            assert compat.IS_MICROPYTHON

        def test_skipped():
            skip("not on this port")

        def helper_not_a_test():
            raise AssertionError("must not be called")
        """,
    )
    r = run_mp_tests(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS " in r.stdout and "test_mixed.py::test_runs_on_micropython_with_lib" in r.stdout
    assert "test_mixed.py::test_skipped: not on this port" in r.stdout
    assert "SKIP " in r.stdout
    assert "helper_not_a_test" not in r.stdout
    assert _last_line(r.stdout) == "1 passed, 0 failed, 1 skipped"


def test_source_order_filter_and_captured_output(tmp_path, run_mp_tests):
    _write(
        tmp_path,
        "test_order.py",
        """
        def test_zz_first():
            pass

        def test_aa_second():
            print("noise from a passing test")

        def test_mm_third():
            print("clue for the reader")
            assert False
        """,
    )
    r = run_mp_tests(tmp_path)
    lines = [line for line in r.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    names = [line.split("::")[1] for line in lines]
    assert names == ["test_zz_first", "test_aa_second", "test_mm_third"]
    # output is shown for the failing test only
    assert "clue for the reader" in r.stdout
    assert "noise from a passing test" not in r.stdout
    assert _last_line(r.stdout) == "2 passed, 1 failed"

    r = run_mp_tests("-k", "aa_sec", tmp_path)
    assert r.returncode == 0
    assert _last_line(r.stdout) == "1 passed, 0 failed"

    r = run_mp_tests("-k", "no_such_test", tmp_path)
    assert r.returncode != 0  # nothing ran
    assert _last_line(r.stdout) == "0 passed, 0 failed"


def test_import_error_and_empty_dir_fail(tmp_path, run_mp_tests):
    bad = tmp_path / "bad"
    bad.mkdir()
    _write(bad, "test_broken.py", "import no_such_module_here\n\ndef test_x():\n    pass\n")
    r = run_mp_tests(bad)
    assert r.returncode != 0
    assert "no_such_module_here" in r.stdout
    assert _last_line(r.stdout) == "0 passed, 1 failed"

    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_mp_tests(empty)
    assert r.returncode != 0
    assert _last_line(r.stdout) == "0 passed, 0 failed"


def test_hung_test_is_killed_and_next_file_runs(tmp_path, run_mp_tests):
    _write(tmp_path, "test_a_hang.py", "def test_forever():\n    while True:\n        pass\n")
    _write(tmp_path, "test_b_ok.py", "def test_fine():\n    assert 2 * 2 == 4\n")
    t0 = time.monotonic()
    r = run_mp_tests("--timeout", "2", tmp_path)
    assert time.monotonic() - t0 < 30
    assert r.returncode != 0
    assert "test_a_hang.py::test_forever" in r.stdout and "timed out" in r.stdout
    assert "PASS " in r.stdout and "test_b_ok.py::test_fine" in r.stdout
    assert _last_line(r.stdout) == "1 passed, 1 failed"


# ------------------------------------------------------------------ mpy.mjs


def test_script_exit_status_and_copy_out(tmp_path, run_micropython):
    s = _write(tmp_path, "boom.py", "raise ValueError('kaput')\n")
    r = run_micropython(s)
    assert r.returncode == 1
    assert "ValueError: kaput" in r.stderr

    s = _write(tmp_path, "exit3.py", "import sys\nsys.exit(3)\n")
    assert run_micropython(s).returncode == 3

    s = _write(
        tmp_path,
        "out.py",
        """
        import os, sys
        os.mkdir("/out")
        with open("/out/data.bin", "wb") as f:
            f.write(bytes(range(256)))
        print("args", sys.argv[1:])
        """,
    )
    dest = tmp_path / "copied"
    r = run_micropython(s, "x", "y", out=[("/out", dest)])
    assert r.returncode == 0, r.stderr
    assert "args ['x', 'y']" in r.stdout
    assert (dest / "data.bin").read_bytes() == bytes(range(256))


def _pty():
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


def _read_exact(fd, n, deadline):
    """Read n bytes from fd, or what came before the deadline."""
    got = b""
    while len(got) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        got += os.read(fd, n - len(got))
    return got


def test_pty_bridge_echoes_every_byte_value(tmp_path, start_micropython):
    """MicroPython reads a host pty through hostio and writes the bytes back."""
    master, slave, name = _pty()
    script = _write(
        tmp_path,
        "echo.py",
        """
        import sys, js, hostio
        from hostserial import HostSerial

        # raw hostio first: open errors are negative errno values, no exception
        assert hostio.errno_name(hostio.open("/no/such/tty")) == "ENOENT"
        fd = hostio.open(sys.argv[1])
        assert fd >= 0
        assert bytes(hostio.read(fd, 16)) == b""  # nothing waiting: empty, no block
        assert hostio.write(fd, b"R") == 1  # tell the host we are ready
        got = b""
        while len(got) < 4:
            got += bytes(hostio.read(fd, 4 - len(got), 2000))
        assert hostio.write(fd, js.Uint8Array.new(got)) == 4
        hostio.close(fd)

        # then the UART-like wrapper, for the bulk
        u = HostSerial(sys.argv[1], timeout=5000, timeout_char=200)
        total = 0
        while True:
            d = u.read(300)
            if d is None:
                break
            u.write(d)
            total += len(d)
            if d.endswith(b"END"):
                break
        print("echoed", total)
        """,
    )
    proc = start_micropython(script, name)
    try:
        deadline = time.monotonic() + 30
        assert _read_exact(master, 1, deadline) == b"R"
        os.write(master, b"ping")
        assert _read_exact(master, 4, deadline) == b"ping"

        data = bytes(range(256)) * 12 + b"END"
        os.write(master, data)
        assert _read_exact(master, len(data), deadline) == data
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, err
    assert "echoed %d" % len(data) in out


def _main_thread_states(proc, samples=12, every=0.1):
    """Scheduler states ('S' sleeping, 'R' running) of proc's main thread.

    12 samples 0.1 s apart fit well inside the 4 s sleep even when this VM
    oversleeps some of them.
    """
    states = []
    for _ in range(samples):
        with open("/proc/%d/stat" % proc.pid) as f:
            states.append(f.read().rsplit(")", 1)[1].split()[0])
        time.sleep(every)
    return states


@pytest.mark.parametrize("sleeper, spins", [("hostio.sleep_ms", False), ("time.sleep_ms", True)])
def test_sleep_ms_blocks_without_spinning(tmp_path, start_micropython, sleeper, spins):
    """hostio.sleep_ms really sleeps; the port's own time.sleep_ms busy-waits.

    CPU-time accounting is too noisy on loaded VMs, so look at the scheduler
    state of node's main thread during the sleep instead.
    """
    script = _write(
        tmp_path,
        "sleepy.py",
        """
        import hostio, time
        t0 = hostio.now_ms()
        print("sleeping")
        %s(4000)
        dt = hostio.now_ms() - t0
        assert 3900 <= dt < 30000, dt
        print("slept", dt)
        """
        % sleeper,
    )
    proc = start_micropython(script)
    try:
        assert proc.stdout.readline().strip() == "sleeping"
        time.sleep(0.2)
        states = _main_thread_states(proc)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    running = states.count("R")
    if spins:
        assert running >= 8, states  # the control: a busy wait is seen as one
    else:
        assert running <= 4, states


# ------------------------------------------------------------------ _portable on CPython


def test_portable_helpers_on_cpython():
    assert not _portable.on_micropython()
    e = _portable.raises(KeyError, {}.__getitem__, "k")
    assert isinstance(e, KeyError)
    with pytest.raises(AssertionError):
        _portable.raises(KeyError, dict, a=1)
    # under pytest, skip() is pytest.skip
    with pytest.raises(pytest.skip.Exception):
        _portable.skip("why")


def test_pytest_collects_portable_tests(repo_root):
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "host_tests/portable/test_compat.py"],
        cwd=str(repo_root),
        capture_output=True,
        text=True,
    )
    assert "test_compat.py::test_sha256_known_vectors" in r.stdout, r.stdout + r.stderr


def test_unix_runner_circuitpython_mask(tmp_path):
    # --circuitpython: compat takes its CircuitPython branches on the unix port
    from conftest import run_unix_tests

    _write(
        tmp_path,
        "test_cp.py",
        """
        import time
        from smpdfu import compat

        def test_masked():
            assert not hasattr(time, "ticks_ms") and not hasattr(time, "monotonic_ns")
            assert not compat.NATIVE_CODE
            import supervisor
            assert compat.ticks_ms is supervisor.ticks_ms
            # the clock starts 2 s before its 2**29 wrap; differences still work
            a = compat.ticks_ms()
            assert a > (1 << 29) - 3000, a
            b = compat.ticks_add(a, 5000)
            assert b < a and compat.ticks_diff(b, a) == 5000 and compat.ticks_diff(a, b) == -5000
        """,
    )
    r = run_unix_tests("--circuitpython", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _last_line(r.stdout) == "1 passed, 0 failed"
    r = run_unix_tests(tmp_path)  # unmasked: the same test fails
    assert _last_line(r.stdout) == "0 passed, 1 failed"
