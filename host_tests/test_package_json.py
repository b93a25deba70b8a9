"""package.json (mip) installs exactly the modules the app imports.

The import closure of firmware/main.py is computed here independently, by
parsing imports with ``ast`` (module level and inside functions), and compared
with package.json; then mpremote's own mip code installs package.json into a
fake board filesystem, and the app's modules import from that alone.
"""

import ast
import json
import os
import subprocess
import sys

import pytest

from smpdfu_host import deploy

REPO = deploy.REPO_ROOT
ROOTS = [os.path.join(REPO, "lib"), os.path.join(REPO, "firmware")]


def _resolve(name):
    parts = name.split(".")
    for root in ROOTS:
        for cand in (os.path.join(root, *parts) + ".py", os.path.join(root, *parts, "__init__.py")):
            if os.path.isfile(cand):
                return cand
    return None


def closure(entry):
    """Repo-relative paths of the modules ``entry`` imports, transitively (an independent walk)."""
    done, todo = set(), [(entry, None)]
    while todo:
        path, name = todo.pop()
        if path in done:
            continue
        done.add(path)
        pkg = name if path.endswith("__init__.py") else (name.rpartition(".")[0] if name else "")
        tree = ast.parse(open(path).read())
        names = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module
                names.append(mod)
                names += [mod + "." + a.name for a in node.names]
        for n in names:
            bits = n.split(".")
            for i in range(1, len(bits) + 1):
                sub = ".".join(bits[:i])
                f = _resolve(sub)
                if f:
                    todo.append((f, sub))
    done.discard(entry)
    return sorted(os.path.relpath(p, REPO) for p in done)


@pytest.fixture(scope="module")
def package():
    with open(os.path.join(REPO, "package.json")) as f:
        return json.load(f)


def test_package_json_is_exactly_the_import_closure_of_main(package):
    expected = closure(os.path.join(REPO, "firmware", "main.py"))
    srcs = [src for _, src in package["urls"]]
    assert len(srcs) == len(set(srcs))
    assert sorted(srcs) == expected
    # things the app reaches only inside functions are in (client.upload imports .upload lazily)
    assert "lib/smpdfu/upload.py" in srcs and "lib/smpdfu/updater.py" in srcs
    # and nothing host-only, nothing the app does not import
    assert not any(s.startswith("host/") for s in srcs)
    assert not any(os.path.basename(s).startswith("server") for s in srcs)


def test_package_json_targets_and_version(package):
    from smpdfu import __version__

    assert package["version"] == __version__
    for dest, src in package["urls"]:
        # installed under mip's target (/lib): smpdfu/x.py, smpdfu_app.py
        assert dest == src.split("/", 1)[1], (dest, src)
        assert os.path.isfile(os.path.join(REPO, src))


def test_package_json_is_what_the_deploy_tool_generates(package):
    assert package == deploy.package_json()
    assert deploy.main(["package-json", "--check"]) == 0


class FakeBoard:
    """The transport side of mpremote's mip: a dict as the board's filesystem."""

    def __init__(self):
        self.files = {}
        self.dirs = {"/lib"}

    def fs_exists(self, path):
        return path in self.dirs or path in self.files

    def fs_mkdir(self, path):
        self.dirs.add(path)

    def fs_writefile(self, path, data, progress_callback=None):
        assert os.path.dirname(path) in self.dirs, "mip made no directory for " + path
        self.files[path] = data


def test_mpremote_mip_installs_it_and_the_app_imports_from_it_alone(tmp_path):
    from mpremote import mip

    board = FakeBoard()
    mip._install_json(board, os.path.join(REPO, "package.json"), mip._PACKAGE_INDEX, "/lib", None, False)
    expected = closure(os.path.join(REPO, "firmware", "main.py"))
    installed = sorted(board.files)
    assert installed == sorted("/lib/" + p.split("/", 1)[1] for p in expected)
    for p, data in board.files.items():
        src = [e for e in expected if e.endswith(p[len("/lib/"):])][0]
        assert data == open(os.path.join(REPO, src), "rb").read()
    # write the board's /lib out and import every app module from it, with
    # nothing else of the repo on the path: nothing is missing
    lib = tmp_path / "lib"
    for p, data in board.files.items():
        dst = lib / p[len("/lib/"):]
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
    code = ("import sys, smpdfu_app, smpdfu.upload\n"
            "mods = sorted(m for m in sys.modules if m == 'smpdfu_app' or m.startswith('smpdfu.'))\n"
            "bad = [m for m in mods if not sys.modules[m].__file__.startswith(%r)]\n"
            "assert not bad, bad\n"
            "print(len(mods))\n" % str(lib))
    r = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, %r)\n" % str(lib) + code],
                       capture_output=True, text=True, cwd=str(tmp_path), timeout=30)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) >= 10


def test_closure_follows_relative_and_function_level_imports(tmp_path):
    # deploy.import_closure on a made-up tree
    pkg = tmp_path / "lib" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\nfrom .c import X\n")
    (pkg / "b.py").write_text("def f():\n    from .d import y\n    import machine\n")
    (pkg / "c.py").write_text("X = 1\n")
    (pkg / "d.py").write_text("y = 2\n")
    (pkg / "unused.py").write_text("")
    (pkg / "__main__.py").write_text("import argparse\n")
    entry = tmp_path / "main.py"
    entry.write_text("import pkg.a\n")
    files, external = deploy.import_closure(str(entry), [str(tmp_path / "lib")])
    names = sorted(os.path.relpath(f, str(tmp_path / "lib")) for f in files)
    assert names == ["pkg/__init__.py", "pkg/a.py", "pkg/b.py", "pkg/c.py", "pkg/d.py"]
    assert external == ["machine"]
