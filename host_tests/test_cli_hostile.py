"""The CLI against a hostile device (issue 9): every command ends with exit 0 or one
line ``error: ...`` naming what was wrong; never a traceback or a bare Python
exception, and ``--json`` output is always one JSON document.

The device (on a pty) answers every request with a correct header and a body
from fuzzing.py: random values of the wrong types under the keys SMP uses,
mutated real answers, or garbage.
"""

import io
import json
import random

import pytest

import fuzzing
from _portable import dumps
from imagegen import make_image
from smpdfu_host import cli
from test_client_pyserial import PtyDevice

pytest.importorskip("serial")

_BARE = ("TypeError", "AttributeError", "KeyError", "IndexError", "ValueError", "UnicodeError",
         "OverflowError", "MemoryError", "RecursionError", "Traceback")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return make_image(tmp_path_factory.mktemp("hostile") / "app.bin", version="1.1.0", size=1500, seed=9)


def _commands(image):
    h = "11" * 32
    return (["echo", "hi"], ["params"], ["info"], ["reset"], ["reset", "--wait", "0.3"],
            ["image", "list"], ["image", "test", h], ["image", "confirm"], ["image", "confirm", h],
            ["image", "erase"], ["image", "slots"], ["image", "upload", image],
            ["update", image, "--boot-timeout", "0.5"])


def _body(rng, corpus):
    k = rng.randrange(3)
    if k == 0:
        v = fuzzing.random_value(rng)
        if rng.random() < 0.8:
            v = {rng.choice(fuzzing._KEYS): v for _ in range(rng.randint(1, 3))}
        return dumps(v)
    if k == 1:
        return fuzzing.mutate(rng, rng.choice(corpus), corpus)
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))


def test_every_command_ends_cleanly_against_a_hostile_device(image):
    rng = random.Random(11)
    corpus = fuzzing._corpora()["client"]
    good = fuzzing._GOOD

    def answer(group, cmd, req):
        # mostly sane answers to the other commands, so that each command's
        # own parsing is reached; hostile ones otherwise
        if rng.random() < 0.5 and (group, cmd) in good:
            return dumps(good[(group, cmd)])
        return _body(rng, corpus)

    dev = PtyDevice(fuzzing.HostileDevice(answer))
    runs = 0
    try:
        for _round in range(6):
            for argv in _commands(image):
                for js in ((), ("--json",)):
                    out, err = io.StringIO(), io.StringIO()
                    code = cli.run(["--port", dev.path, "--timeout", "0.3"] + argv + list(js),
                                   stdout=out, stderr=err)
                    runs += 1
                    what = "%s -> %d\nstdout: %s\nstderr: %s" % (argv, code, out.getvalue(), err.getvalue())
                    assert code in (0, 1), what
                    lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("error")]
                    if code == 1:
                        assert len(lines) == 1 and lines[0].startswith("error: "), what
                    else:
                        assert not lines, what
                    assert not any(b in err.getvalue() for b in _BARE), what
                    if js:
                        doc = json.loads(out.getvalue())
                        assert doc["ok"] is (code == 0), what
    finally:
        dev.close()
    assert runs == 6 * 13 * 2
