"""The ``smpdfu`` command line without a device: arguments, offline ``image info``,
error messages and exit codes, JSON shape, progress output."""

import hashlib
import io
import json
import os
import select
import subprocess
import sys

import pytest

from imagegen import dumpinfo, imgtool_verify, make_image
from smpdfu_host import cli
from smpdfu_host.progress import Progress, fmt_eta, fmt_rate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "lib"), os.path.join(REPO, "host")]))


def run(*argv):
    """Run the CLI in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.run([str(a) for a in argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def run_sub(*argv, timeout=20):
    """Run ``python -m smpdfu_host`` (the CLI) as a subprocess."""
    return subprocess.run([sys.executable, "-m", "smpdfu_host"] + [str(a) for a in argv],
                          capture_output=True, text=True, timeout=timeout, env=ENV, cwd=REPO)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    signed = make_image(d / "signed.bin", version="1.2.3+4", size=5000, key="ecdsa-p256",
                        security_counter=7, seed=1)
    plain = make_image(d / "plain.bin", version="2.0.1", size=3000, seed=2)
    data = bytearray(open(plain, "rb").read())
    data[700] ^= 0x55  # inside the body: the SHA256 TLV no longer matches
    bad = str(d / "bad.bin")
    with open(bad, "wb") as f:
        f.write(data)
    junk = str(d / "junk.bin")
    with open(junk, "wb") as f:
        f.write(b"\x00" * 100)
    return {"signed": signed, "plain": plain, "bad": bad, "junk": junk}


@pytest.fixture
def pty_port():
    """A pty nobody answers on: (port path, master fd)."""
    master, slave = os.openpty()
    name = os.ttyname(slave)
    yield name, master
    os.close(master)
    os.close(slave)


def drain(fd, wait=0.05):
    data = b""
    while select.select([fd], [], [], wait)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def one_error_line(err):
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------- arguments

def test_help_and_usage_errors():
    assert run("--help")[0] == 0
    assert run()[0] == 2  # no command
    assert run("image")[0] == 2  # no image command
    assert run("frobnicate")[0] == 2
    assert run("image", "upload")[0] == 2  # missing FILE
    assert run("--baud", "fast", "params")[0] == 2


def test_version(capsys):
    from smpdfu import __version__
    assert run("--version")[0] == 0
    assert capsys.readouterr().out.strip() == "smpdfu %s" % __version__


def test_encrypted_image_says_plainly_what_was_not_checked(tmp_path, pty_port):
    enc = make_image(tmp_path / "enc.bin", version="1.0.0", size=2000, encrypt="x25519", seed=4)
    code, out, err = run("image", "info", enc)
    assert code == 0
    assert "NOT CHECKED: the image is encrypted and its hash covers the plaintext" in out
    assert "OK" not in out
    code, out, err = run("image", "info", enc, "--json")
    d = json.loads(out)
    assert d["hash_verified"] is False and d["checked"] == "layout only (encrypted: hash not checked)"
    port, master = pty_port
    code, out, err = run("--port", port, "--timeout", "0.1", "image", "upload", enc)
    assert err.startswith("note: %s: hash NOT CHECKED" % enc)


def test_global_options_before_or_after_the_command():
    p = cli.build_parser()
    a = p.parse_args(["--port", "/dev/x", "--baud", "1000000", "image", "list"])
    assert (a.port, a.baud, a.json, a.timeout) == ("/dev/x", 1000000, False, cli.DEFAULT_TIMEOUT)
    a = p.parse_args(["image", "state", "--json", "-p", "socket://h:1", "-t", "0.5"])
    assert (a.port, a.json, a.timeout, a.image_command) == ("socket://h:1", True, 0.5, "state")
    a = p.parse_args(["-b", "9600", "image", "upload", "f.bin", "--window", "2", "--chunk", "512"])
    assert (a.baud, a.file, a.window, a.chunk, a.image) == (9600, "f.bin", 2, 512, 0)
    a = p.parse_args(["image", "confirm"])
    assert a.hash is None
    a = p.parse_args(["image", "erase", "1"])
    assert a.slot == 1


def test_port_from_environment(monkeypatch):
    monkeypatch.setenv(cli.ENV_PORT, "/dev/from-env")
    assert cli.build_parser().parse_args(["params"]).port == "/dev/from-env"


def test_command_word_detection_for_emulate():
    assert cli._command_index(["--port", "emulate", "image", "list"]) == 2
    assert cli._command_index(["-b", "9600", "emulate", "--baud", "1"]) == 2
    assert cli._command_index(["--json", "-v"]) is None


# ---------------------------------------------------------------- image info (offline)

def test_image_info_json_matches_imgtool(images):
    path = images["signed"]
    code, out, err = run("image", "info", path, "--json")
    assert code == 0, err
    d = json.loads(out)
    ref = imgtool_verify(path, key="ecdsa-p256")
    dump = dumpinfo(path)
    assert ref.ok
    assert d["ok"] is True and d["valid"] is True and d["hash_verified"] is True
    assert d["hash"] == ref.digest
    assert d["version"] == ref.version == "1.2.3+4"
    assert d["version_state"] == "1.2.3.4"
    assert d["header_size"] == dump["hdr_size"]
    assert d["image_size"] == dump["img_size"] == 5000
    assert d["protected_tlv_size"] == dump["protected_tlv_size"]
    assert d["tlv_size"] == dump["tlv_area_size"]
    assert [(t["type"], t["len"]) for t in d["tlvs"]] == [(t, n) for t, n, _ in dump["tlvs"]]
    assert [(t["type"], t["len"]) for t in d["protected_tlvs"]] == [(t, n) for t, n, _ in dump["prot_tlvs"]]
    assert d["signed"] is True
    assert d["security_counter"] == 7
    with open(path, "rb") as f:
        data = f.read()
    assert d["file_size"] == len(data) == d["total_size"]
    assert d["file_sha256"] == hashlib.sha256(data).hexdigest()


def test_image_info_text(images):
    code, out, err = run("image", "info", images["plain"])
    assert code == 0, err
    ref = imgtool_verify(images["plain"])
    assert ref.digest in out
    assert "2.0.1+0 (the device lists 2.0.1)" in out
    assert [l.split() for l in out.splitlines() if l.startswith("signed ")] == [["signed", "no"]]
    assert "OK (image hash matches)" in out
    assert "SHA256 (32)" in out


def test_image_info_needs_no_port(images, monkeypatch):
    monkeypatch.delenv(cli.ENV_PORT, raising=False)
    assert run("image", "info", images["plain"])[0] == 0


def test_image_info_bad_image(images):
    code, out, err = run("image", "info", images["bad"])
    assert code == 1
    line = one_error_line(err)
    assert line.startswith("error: bad image %s: image hash mismatch" % images["bad"])
    assert "FAILED" in out and "2.0.1+0" in out  # the header is still shown
    code, out, err = run("image", "info", images["bad"], "--json")
    assert code == 1
    d = json.loads(out)
    assert d["ok"] is False and d["valid"] is False
    assert "hash mismatch" in d["error"]
    assert d["version"] == "2.0.1+0"


def test_image_info_not_an_image(images, tmp_path):
    code, out, err = run("image", "info", images["junk"])
    assert code == 1
    assert "bad image" in one_error_line(err) and "magic" in err
    code, out, err = run("image", "info", tmp_path / "missing.bin")
    assert code == 1
    assert one_error_line(err) == "error: cannot read %s: No such file or directory" % (tmp_path / "missing.bin")


# ---------------------------------------------------------------- errors with a port

def test_no_port_given(monkeypatch):
    monkeypatch.delenv(cli.ENV_PORT, raising=False)
    code, out, err = run("params")
    assert code == 2
    assert "no port" in one_error_line(err)


def test_no_such_port():
    code, out, err = run("--port", "/dev/does-not-exist-smpdfu", "image", "list")
    assert code == 1
    assert one_error_line(err) == ("error: cannot open port /dev/does-not-exist-smpdfu: "
                                   "No such file or directory")
    code, out, err = run("--port", "/dev/does-not-exist-smpdfu", "--json", "echo", "x")
    assert code == 1
    d = json.loads(out)
    assert d == {"ok": False, "error": "cannot open port /dev/does-not-exist-smpdfu: No such file or directory",
                 "type": "CLIError", "command": "echo"}


def test_timeout_against_silent_pty(pty_port):
    port, master = pty_port
    code, out, err = run("--port", port, "--timeout", "0.3", "image", "list")
    assert code == 1
    assert one_error_line(err) == "error: device did not answer within 0.3 s (image list)"
    sent = drain(master)
    # a newline ends the device's partial line first; the request went out,
    # framed, and (the first of the link) once more after the timeout
    assert sent.startswith(b"\n\x06\x09") and sent.count(b"\x06\x09") == 2
    code, out, err = run("--port", port, "--timeout", "0.2", "--json", "params")
    assert code == 1
    d = json.loads(out)
    assert d["ok"] is False and d["type"] == "SMPTimeout" and d["command"] == "params"
    assert d["error"] == "device did not answer within 0.2 s (params)"


def test_verbose_shows_traceback(pty_port):
    port, _master = pty_port
    code, out, err = run("-v", "--port", port, "--timeout", "0.2", "echo", "hi")
    assert code == 1
    assert "Traceback" in err and "SMPTimeout" in err
    assert err.rstrip().splitlines()[-1].startswith("error: device did not answer within 0.2 s (echo)")


def test_upload_refuses_bad_image_and_sends_nothing(images, pty_port):
    port, master = pty_port
    code, out, err = run("--port", port, "image", "upload", images["bad"])
    assert code == 1
    assert one_error_line(err).startswith("error: bad image %s: image hash mismatch" % images["bad"])
    assert drain(master) == b""
    code, out, err = run("--port", port, "update", images["junk"], "--json")
    assert code == 1
    assert json.loads(out)["ok"] is False
    assert drain(master) == b""
    # update checks first even with --no-verify: nothing is sent for an image it cannot confirm
    code, out, err = run("--port", port, "update", images["bad"], "--no-verify")
    assert code == 1
    assert one_error_line(err).startswith("error: bad image %s: image hash mismatch" % images["bad"])
    assert err.rstrip().endswith("; nothing sent")
    assert drain(master) == b""


def test_bad_hash_argument(pty_port):
    port, master = pty_port
    code, out, err = run("--port", port, "image", "test", "xyz")
    assert code == 2
    assert one_error_line(err) == "error: bad hash 'xyz': expected hex digits"
    assert drain(master) == b""
    # valid hex, but no image hash: refused here, not sent to the device
    for cmd in ("test", "confirm"):
        code, out, err = run("--port", port, "image", cmd, "abcd")
        assert code == 2
        assert one_error_line(err).startswith("error: bad hash 'abcd': an image hash is 64 hex digits")
        assert drain(master) == b""


def test_python_dash_m_entry_point(images):
    r = run_sub("image", "info", images["plain"], "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["hash"] == imgtool_verify(images["plain"]).digest
    r = run_sub("--port", "/dev/does-not-exist-smpdfu", "reset")
    assert r.returncode == 1
    assert one_error_line(r.stderr).startswith("error: cannot open port")


# ---------------------------------------------------------------- output helpers

class _Slot:
    def __init__(self, **kw):
        self.image, self.slot, self.version, self.hash = 0, 0, "1.0.0", b"\xab" * 32
        self.bootable, self.pending, self.confirmed, self.active, self.permanent = True, False, False, False, False
        self.__dict__.update(kw)


def test_state_table_and_flags():
    slots = [_Slot(active=True, confirmed=True), _Slot(slot=1, version="1.1.0", hash=b"\x01" * 32,
                                                      pending=True, permanent=True)]
    lines = cli.state_lines(slots)
    assert lines[0].split() == ["image", "slot", "version", "flags", "hash"]
    assert "active confirmed" in lines[1] and "ab" * 32 in lines[1]
    assert "pending permanent" in lines[2] and "1.1.0" in lines[2]
    assert cli.slot_flags(_Slot(bootable=False)) == "non-bootable"
    d = cli.slot_dict(slots[1])
    assert d == {"image": 0, "slot": 1, "version": "1.1.0", "hash": "01" * 32, "bootable": True,
                 "pending": True, "confirmed": False, "active": False, "permanent": True,
                 "flags": "pending permanent"}
    assert cli.state_lines([]) == ["(no images)"]


class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_lines_mode():
    clk, s = _Clock(), io.StringIO()
    p = Progress(10000, stream=s, clock=clk)
    assert p.mode == "lines"  # not a tty
    for done in range(0, 10001, 500):
        p(done, 10000)
        clk.t += 0.1
    p.finish()
    lines = s.getvalue().splitlines()
    # one line per 10 % step (0, 10, ..., 100), the last at 100 %
    assert len(lines) == 11
    assert lines[-1].startswith("upload: 100%  10,000/10,000 B")
    assert "kB/s" in lines[5] and "ETA" in lines[5]
    # 500 B per 0.1 s = 5.0 kB/s
    assert "5.0 kB/s" in lines[-1]


def test_progress_bar_mode():
    clk, s = _Tty(), None
    clk = _Clock()
    s = _Tty()
    p = Progress(2000, stream=s, clock=clk)
    assert p.mode == "bar"
    p(0, 2000)
    clk.t += 1
    p(1000, 2000)
    clk.t += 1
    p(2000, 2000)
    p.finish()
    text = s.getvalue()
    assert text.count("\r") >= 3 and text.endswith("\n")
    assert "[" + "#" * 30 + "]" in text and "100%" in text and "1.0 kB/s" in text
    assert " 50%" in text and "ETA 0:01" in text


def test_progress_off_and_formatting():
    s = io.StringIO()
    p = Progress(100, stream=s, mode="off")
    p(50)
    p.finish()
    assert s.getvalue() == ""
    assert fmt_eta(5) == "0:05" and fmt_eta(3725) == "1:02:05" and fmt_eta(None) == "--:--"
    assert fmt_rate(7400) == "7.4 kB/s" and fmt_rate(2.5e6) == "2.50 MB/s"
