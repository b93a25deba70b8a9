"""Nothing imports upward: lib/ never imports host code, host/ never reaches into host_tests/.

The imports are read with ``ast`` (every level, including imports inside
functions); node tools are checked for their import paths, Python files for
path strings naming host_tests (docstrings aside).
"""

import ast
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _files(top, ext):
    for d, dirs, files in os.walk(os.path.join(REPO, top)):
        dirs[:] = [x for x in dirs if x not in ("node_modules", "__pycache__")]
        for f in files:
            if f.endswith(ext):
                yield os.path.join(d, f)


def _top_modules(top):
    # Top-level module names a file under ``top`` defines (x.py, packages).
    names = set()
    for d, dirs, files in os.walk(os.path.join(REPO, top)):
        dirs[:] = [x for x in dirs if x not in ("node_modules", "__pycache__")]
        names.update(f[:-3] for f in files if f.endswith(".py") and f != "__init__.py")
        names.update(x for x in dirs if os.path.isfile(os.path.join(d, x, "__init__.py")))
    return names


def _imports(path):
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.lineno, node.module.split(".")[0]


def _docstrings(tree):
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _rel(p):
    return os.path.relpath(p, REPO)


def test_lib_imports_no_host_or_test_code():
    lib = _top_modules("lib")
    upward = (_top_modules("host") | _top_modules("host_tests")) - lib
    assert "smpdfu_host" in upward and "smpdev" in upward and "hostserial" in upward
    bad = ["%s:%d imports %s" % (_rel(p), n, m) for p in _files("lib", ".py")
           for n, m in _imports(p) if m in upward]
    assert not bad, bad


def test_host_imports_nothing_from_host_tests():
    tests = _top_modules("host_tests") - _top_modules("host") - _top_modules("lib")
    assert "smpdev" in tests and "_portable" in tests and "imagegen" in tests
    bad = []
    # board configs and on-board apps are deployed or run by host tools: same rule
    for top in ("boards", "firmware"):
        for p in _files(top, ".py"):
            bad += ["%s:%d imports %s" % (_rel(p), n, m) for n, m in _imports(p) if m in tests]
    for p in _files("host", ".py"):
        bad += ["%s:%d imports %s" % (_rel(p), n, m) for n, m in _imports(p) if m in tests]
        with open(p) as f:
            tree = ast.parse(f.read(), p)
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
                    and re.search(r"(^|[/\\])host_tests($|[/\\])", node.value)):
                bad.append("%s:%d names host_tests in %r" % (_rel(p), node.lineno, node.value))
    for p in _files("host", ".mjs"):
        with open(p) as f:
            for n, line in enumerate(f, 1):
                code = line.split("//", 1)[0]
                if re.search(r"""(from\s+|import\s*\(|["'])[^"']*host_tests""", code):
                    bad.append("%s:%d reaches into host_tests: %s" % (_rel(p), n, line.strip()))
    assert not bad, bad


def test_the_scan_sees_a_violation(tmp_path):
    # the checks above would catch an upward import (the scanner is not blind)
    p = tmp_path / "x.py"
    p.write_text("def f():\n    from smpdfu_host.cli import main\n    import smpdev.thing\n")
    assert [m for _, m in _imports(str(p))] == ["smpdfu_host", "smpdev"]


def test_error_names_load_only_when_an_error_is_built():
    # A board's update path imports the numbers (proto), not the names (errcodes).
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import smpdfu.client, smpdfu.updater, smpdfu.upload, smpdfu.transport, smpdfu.errors\n"
        "assert 'smpdfu.proto' in sys.modules\n"
        "assert 'smpdfu.errcodes' not in sys.modules, 'errcodes loaded at import'\n"
        # an image group error answer, decoded as the client does
        "class T:\n    packet = bytearray(64)\n"
        "c = smpdfu.client.SMPClient(T())\n"
        "pkt = bytes([3, 0, 0, 0, 0, 1, 0, 1]) + b'\\xa1\\x63err\\xa2\\x65group\\x01\\x62rc\\x09'  # {'err': {'group': 1, 'rc': 9}}\n"
        "try:\n    c.decode(pkt)\nexcept smpdfu.errors.ImageError as x:\n    e = x\n"
        "assert 'smpdfu.errcodes' in sys.modules and e.name == 'NO_FREE_SLOT', e.name\n"
        "assert (e.rc, e.group) == (9, 1)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "lib"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr


def test_error_texts_load_only_on_a_failure():
    # cbor's and messages' texts (errtext) cost heap only once something failed:
    # a whole good upload and the answers an update reads never load them.
    import subprocess
    import sys

    code = (
        "import io, sys\n"
        "from smpdfu.client import SMPClient\n"
        "from smpdfu.transport import SerialTransport\n"
        "from smpdev import SMPDevice\n"
        "from mcuimg import build\n"
        "c = SMPClient(SerialTransport(SMPDevice()), timeout_ms=500)\n"
        "img = build(body_len=3000)\n"
        "r = c.upload(io.BytesIO(img), len(img))\n"
        "c.params(); c.slot_info(); c.image_state(); c.echo('x')\n"
        "assert r.match is not False and 'smpdfu.errtext' not in sys.modules, sorted(sys.modules)\n"
        "from smpdfu import cbor\n"
        "try:\n"
        "    cbor.loads(b'\\xff')\n"
        "except Exception as e:\n"
        "    assert 'break' in str(e), e\n"
        "assert 'smpdfu.errtext' in sys.modules\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "lib"),
                                                       os.path.join(REPO, "host_tests", "portable")]))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
