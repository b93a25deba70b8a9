"""No integer literal in the board's code needs a long int.

CircuitPython builds without long ints (and MicroPython ones built with
MICROPY_LONGINT_IMPL_NONE) refuse to compile a literal outside the 31-bit
small-int range: the module does not even import. That cannot be masked at
run time on the unix port (run_unix.py --circuitpython masks the rest), so
the sources are checked here.
"""

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent
SMALL = 1 << 30  # a 32-bit port's small ints: -2**30 .. 2**30 - 1


def _big_literals(text):
    # (line, value) of every int literal outside the small-int range
    return [(n.lineno, n.value) for n in ast.walk(ast.parse(text))
            if isinstance(n, ast.Constant) and type(n.value) is int and not -SMALL <= n.value < SMALL]


def test_board_code_has_only_small_int_literals():
    from smpdfu_host.deploy import app_modules

    files = [(src, dest) for src, dest in app_modules() if src.endswith(".py")]
    assert any(dest == "smpdfu/cbor.py" for _, dest in files)
    big = ["%s:%d: %d" % (dest, line, v) for src, dest in files
           for line, v in _big_literals(pathlib.Path(src).read_text())]
    assert big == [], big


def test_checker_finds_a_big_literal():
    # -2**30 is a small int, but its literal 2**30 is parsed before the minus
    text = "X = 0x100000000\nY = 5\nZ = -0x40000000\nW = 0x3FFFFFFF\n"
    assert _big_literals(text) == [(1, 1 << 32), (3, 1 << 30)]
