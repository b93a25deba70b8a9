"""Fuzzing smpdfu's decoders and the client's answer parsing (CPython).

Targets (each takes one input and either succeeds or raises a *named* smpdfu
error; anything else, or a broken invariant, is a finding):

- ``cbor``: :func:`smpdfu.cbor.loads`; what it accepts must decode the same
  with cbor2 (a real implementation) and survive ``loads(dumps(x)) == x``;
- ``framing``: :class:`smpdfu.framing.FrameDecoder` fed in random pieces;
  every packet it returns has a good CRC and fits ``max_packet``;
- ``header``: :func:`smpdfu.server.unpack_header`;
- ``mcuboot``: :func:`smpdfu.mcuboot.verify` on mutated images; an accepted
  image's hash really matches (recomputed here);
- ``server``: the portable SMP server (OS and image groups over an emulated
  flash) fed mutated requests: every answer is a well-formed SMP packet whose
  body is a CBOR map;
- ``client``: :class:`smpdfu.client.SMPClient` commands, upload included,
  against a device that answers hostile bodies (mutated real answers, random
  CBOR values of the wrong types, raw garbage); results must have the
  documented types.

Inputs are mutations of a seed corpus of valid inputs, plus random bytes.
``make fuzz`` runs ``python host_tests/fuzzing.py`` (100k cases per target,
prints cases and findings); ``test_fuzz.py`` runs a short pass in ``make test``.
"""

import hashlib
import io
import os
import random
import struct
import sys
import time
import traceback

_HERE = os.path.dirname(os.path.abspath(__file__))
for _p in (os.path.join(_HERE, "portable"), os.path.join(os.path.dirname(_HERE), "lib")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _portable import dumps  # noqa: E402
from smpdfu import cbor, commands, mcuboot  # noqa: E402
from smpdfu.client import SMPClient  # noqa: E402
from smpdfu.crc16 import crc16  # noqa: E402
from smpdfu.errors import SMPError  # noqa: E402
from smpdfu.framing import FrameDecoder, FrameEncoder  # noqa: E402
from smpdfu.header import HEADER_SIZE, pack_header  # noqa: E402
from smpdfu.messages import ImageSlot, McuMgrParams  # noqa: E402
from smpdfu.server import unpack_header  # noqa: E402
from smpdfu.transport import SerialTransport  # noqa: E402

from mcuimg import build  # noqa: E402

_INTERESTING = (0, 1, 0x17, 0x18, 0x1F, 0x3F, 0x40, 0x5F, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0,
                0xF4, 0xF5, 0xF6, 0xF7, 0xF9, 0xFB, 0xFF, 0x06, 0x09, 0x04, 0x14, 0x0A, 0x0D, 0x3D)
_INTERESTING_INTS = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
                     0x80000000, 0xFFFFFFFF)


class Finding(Exception):
    """An invariant a target checks was broken."""


# ---------------------------------------------------------------- inputs

def mutate(rng, data, corpus):
    """A mutation of ``data``: flips, interesting bytes and ints, inserts, deletes, splices."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 5)):
        op = rng.randrange(8)
        n = len(b)
        if op == 0 and n:
            b[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            b[rng.randrange(n)] = rng.choice(_INTERESTING)
        elif op == 2:
            i = rng.randint(0, n)
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and n:
            i = rng.randrange(n)
            del b[i:i + rng.randint(1, 16)]
        elif op == 4 and n:
            i = rng.randrange(n)
            j = min(n, i + rng.randint(1, 32))
            k = rng.randint(0, n)
            b[k:k] = b[i:j] * rng.randint(1, 4)
        elif op == 5:
            other = rng.choice(corpus)
            i = rng.randint(0, n)
            j = rng.randint(0, len(other))
            b = b[:i] + other[j:j + rng.randint(1, 64)] + b[i:]
        elif op == 6 and n >= 4:
            i = rng.randrange(n - 3)
            v = rng.choice(_INTERESTING_INTS)
            fmt = rng.choice(("<I", ">I", "<H", ">H"))
            struct.pack_into(fmt, b, i, v & (0xFFFF if fmt[1] == "H" else 0xFFFFFFFF))
        elif op == 7 and n:
            del b[rng.randint(0, n - 1):]  # truncate
    return bytes(b)


def random_value(rng, depth=0):
    """A random CBOR-encodable value (the wrong types a hostile device may send)."""
    k = rng.randrange(10 if depth < 3 else 7)
    if k == 0:
        return rng.choice(_INTERESTING_INTS) * rng.choice((1, -1))
    if k == 1:
        return rng.randrange(-5, 300)
    if k == 2:
        return rng.choice((True, False, None))
    if k == 3:
        return rng.choice(("", "x", "1.0.0", "false", "MCUboot", "\u00e9" * rng.randint(0, 5)))
    if k == 4:
        return bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 7, 32, 64, 65))))
    if k == 5:
        return rng.choice((1 << 32, 1 << 40, 1 << 63, (1 << 64) - 1, -(1 << 63), -(1 << 64)))
    if k == 6:
        return rng.choice(_KEYS)
    if k == 7:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(_KEYS): random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


_KEYS = ("rc", "err", "group", "rsn", "r", "buf_size", "buf_count", "output", "bootloader", "mode",
         "no-downgrade", "images", "image", "slot", "version", "hash", "bootable", "pending",
         "confirmed", "active", "permanent", "off", "match", "slots", "size", "upload_image_id",
         "max_image_size", "splitStatus")


# ---------------------------------------------------------------- targets

def target_cbor(data):
    try:
        obj = cbor.loads(data)
    except SMPError as e:
        return type(e).__name__
    import cbor2

    try:
        ref = cbor2.loads(data)
    except Exception as e:  # noqa: BLE001 - cbor2's own errors
        raise Finding("smpdfu accepted what cbor2 rejects (%s: %s)" % (type(e).__name__, e))
    if ref != obj:
        raise Finding("smpdfu decoded %r, cbor2 %r" % (obj, ref))
    if cbor.loads(dumps(obj)) != obj:
        raise Finding("loads(dumps(x)) != x for %r" % (obj,))
    return "accepted"


_FRAME_ENC = FrameEncoder(512)
_TEXT = bytes(c for c in range(32, 127)) + b"\r\t\x1b"


def _frame_after_text(data, rng):
    # Property: a frame after console text with no newline (a prompt) is found,
    # whatever the text's length and the read sizes.
    pkt = (data * 2)[:rng.randint(8, 500)].ljust(8, b"\0")
    text = bytes(rng.choice(_TEXT) for _ in range(rng.randint(0, 300)))
    stream = b"\n" + text + bytes(_FRAME_ENC.encode(packet=pkt)) + text
    dec = FrameDecoder(max_packet=512)
    i = 0
    while i < len(stream):
        k = rng.randint(1, 200)
        dec.feed(stream[i:i + k])
        i += k
    got = dec.next()
    if got != pkt:
        raise Finding("frame of %d bytes after %d bytes of text without newline was lost" % (len(pkt), len(text)))
    return "packet"


def target_framing(data, rng):
    if rng.random() < 0.2:
        return _frame_after_text(data, rng)
    dec = FrameDecoder(max_packet=512, max_queue=4)
    got = 0
    i = 0
    while i < len(data):
        k = rng.randint(1, 200)
        dec.feed(data[i:i + k] if rng.random() < 0.5 else memoryview(data)[i:i + k])
        i += k
        while True:
            try:
                pkt = dec.next()
            except SMPError:
                continue
            if pkt is None:
                break
            if len(pkt) > 512 or len(pkt) < HEADER_SIZE:
                raise Finding("packet of %d bytes (max 512, min 8)" % len(pkt))
            got += 1
    dec.feed(b"\n")
    while True:
        try:
            if dec.next() is None:
                break
            got += 1
        except SMPError:
            pass
    return "packet" if got else ("FrameError" if dec.errors else "nothing")


def target_header(data):
    try:
        h = unpack_header(data)
    except SMPError as e:
        return type(e).__name__
    b = bytearray(8)
    op, ver, flags, length, group, seq, cmd = h
    pack_header(b, 0, op, length, group, seq, cmd, ver)
    b[1] = flags
    if unpack_header(b) != h or (bytes(b) != bytes(data[:8]) and data[0] >> 5 == 0):
        raise Finding("header does not round-trip: %r" % (h,))
    return "accepted"


def target_mcuboot(data):
    how = None
    for size in (len(data), None):
        try:
            info = mcuboot.verify(io.BytesIO(data), bytearray(64), size)
        except SMPError as e:
            how = type(e).__name__
            continue
        how = "accepted"
        if info.hash_verified:
            end = info.header_size + info.image_size + info.protected_tlv_size
            if hashlib.sha256(data[:end]).digest() != info.hash:
                raise Finding("accepted an image whose hash does not match")
        if info.file_sha != hashlib.sha256(data[:info.file_size or len(data)]).digest():
            raise Finding("file_sha is not the SHA-256 of the file")
    return how


class HostileDevice:
    """A UART whose device answers each request with ``answer(group, cmd, body) -> bytes``:
    the raw CBOR body of the response (any bytes), under a correct header."""

    def __init__(self, answer):
        self.answer = answer
        self._dec = FrameDecoder(4096, 64)
        self._enc = FrameEncoder(4096)
        self._out = bytearray()

    def write(self, buf):
        self._dec.feed(bytes(buf))
        while True:
            try:
                pkt = self._dec.next()
            except SMPError:
                continue
            if pkt is None:
                return len(buf)
            op, _v, _f, length, group, seq, cmd = unpack_header(pkt)
            try:
                req = cbor.loads(pkt[HEADER_SIZE:HEADER_SIZE + length]) if length else {}
            except SMPError:
                req = {}
            body = self.answer(group, cmd, req)
            if body is None:
                continue  # no answer at all
            rsp = bytearray(HEADER_SIZE + len(body))
            pack_header(rsp, 0, op | 1, len(body), group, seq, cmd)
            rsp[HEADER_SIZE:] = body
            if len(rsp) <= 4096:
                self._out.extend(self._enc.encode(packet=rsp))

    def read_available(self):
        if not self._out:
            return None
        d = bytes(self._out)
        self._out.clear()
        return d

    def close(self):
        pass


_GOOD = {
    (0, 0): {"r": "hi"},
    (0, 6): {"buf_size": 384, "buf_count": 4},
    (0, 7): {"output": "Zephyr nrf52840dk"},
    (0, 8): {"bootloader": "MCUboot", "mode": 1, "no-downgrade": False},
    (1, 0): {"images": [{"image": 0, "slot": 0, "version": "1.0.0", "hash": bytes(32), "bootable": True,
                         "confirmed": True, "active": True},
                        {"image": 0, "slot": 1, "version": "1.1.0", "hash": b"\x11" * 32, "pending": True}]},
    (1, 1): {"off": 100},
    (1, 6): {"images": [{"image": 0, "slots": [{"slot": 0, "size": 0x1000}, {"slot": 1, "size": 0x1000,
                                                                          "upload_image_id": 0}],
                         "max_image_size": 0xF00}]},
}
_GOOD_RAW = [dumps(v) for v in _GOOD.values()] + [dumps({"rc": 3, "rsn": "x"}),
                                                       dumps({"err": {"group": 1, "rc": 9}})]
_UPLOAD_IMAGE = build(body_len=700)


def _check_slots(slots):
    for s in slots:
        if not isinstance(s, ImageSlot) or not isinstance(s.slot, int) or not isinstance(s.version, str):
            raise Finding("bad ImageSlot %r" % (s,))
        if s.hash is not None and not (isinstance(s.hash, bytes) and 0 < len(s.hash) <= 64):
            raise Finding("bad hash %r" % (s.hash,))
        for f in (s.bootable, s.pending, s.confirmed, s.active, s.permanent):
            if f is not True and f is not False:
                raise Finding("flag that is not a bool: %r" % (f,))
        repr(s)


def _commands(c):
    def upload():
        r = c.upload(io.BytesIO(_UPLOAD_IMAGE), len(_UPLOAD_IMAGE), retries=2, first_timeout_ms=60)
        if r.match not in (True, False, None):
            raise Finding("upload match %r" % (r.match,))

    def params():
        p = c.params()
        if not isinstance(p, McuMgrParams) or not isinstance(p.buf_size, int) or isinstance(p.buf_size, bool):
            raise Finding("bad params %r" % (p,))

    def text(fn):
        def run():
            if not isinstance(fn(), str):
                raise Finding("%s did not return text" % fn.__name__)
        return run

    def bootloader():
        d = commands.bootloader_info(c, "mode")
        if not isinstance(d, dict):
            raise Finding("bootloader info %r" % (d,))

    def slot_info():
        for im in c.slot_info():
            for s in im["slots"]:
                if not isinstance(s["size"], int):
                    raise Finding("slot size %r" % (s["size"],))

    return ((0, 0, text(lambda: c.echo("hi"))), (0, 6, params), (0, 7, text(lambda: commands.os_info(c))),
            (0, 8, bootloader), (1, 0, lambda: _check_slots(c.image_state())),
            (1, 0, lambda: _check_slots(c.image_test(b"\x11" * 32))), (1, 6, slot_info), (1, 1, upload))


def make_client_target():
    """The ``client`` target: ``run(data, rng)`` plays one hostile session."""
    state = {}

    def answer(group, cmd, req):
        key = (group, cmd)
        if key != state["key"]:
            good = _GOOD.get(key)
            return dumps(good) if good is not None else dumps({"rc": 8})
        return state["body"](req)

    dev = HostileDevice(answer)
    c = SMPClient(SerialTransport(dev, max_packet=1024), timeout_ms=20)
    c._heard = True  # no first-request retry: every case answers at once
    commands = _commands(c)

    def run(data, rng):
        group, cmd, fn = commands[rng.randrange(len(commands))]
        mode = rng.randrange(3)
        if mode == 0:
            body = lambda req: data  # noqa: E731 - raw (mutated) bytes
        elif mode == 1:
            v = random_value(rng)
            if rng.random() < 0.7:
                v = {rng.choice(_KEYS): v, **({} if rng.random() < 0.5 else {"off": random_value(rng)})}
            raw = dumps(v)
            body = lambda req: raw  # noqa: E731
        else:
            # a plausible upload answer: offsets near the request's, some wrong types
            def body(req):
                off = req.get("off", 0) if isinstance(req, dict) else 0
                v = {"off": rng.choice((off, off + rng.randint(-50, 400), rng.randint(0, 2000), "0", True))}
                if rng.random() < 0.3:
                    v["match"] = rng.choice((True, False, "no", 1, None))
                if rng.random() < 0.2:
                    v["rc"] = rng.choice((0, 1, "x", -1))
                return dumps(v)
        state["key"] = (group, cmd)
        state["body"] = body
        c.pending.clear()
        c.transport.reset()
        try:
            fn()
        except SMPError as e:
            return type(e).__name__
        return "accepted"

    return run


def make_server_target():
    """The ``server`` target: ``run(data, rng)`` feeds one request packet."""
    import atexit
    import shutil
    import tempfile

    sys.path.insert(0, os.path.join(os.path.dirname(_HERE), "host"))
    from smpdfu.server import SMPServer
    from smpdfu.server_image import ImageGroup
    from smpdfu.server_os import OSGroup
    from smpdfu_host.emulator.flash import FlashFile

    work = tempfile.mkdtemp(prefix="smpdfu-fuzz-")
    atexit.register(shutil.rmtree, work, True)
    server = SMPServer(512, 4)
    server.register(OSGroup(lambda: "1.0.0", lambda: None))
    server.register(ImageGroup(FlashFile(os.path.join(work, "flash.bin"), slot_size=0x4000, speed=0)))

    def run(data, rng):
        how = "no answer"
        for rsp in server.process(data):
            if not isinstance(rsp, bytes) or len(rsp) > 512:
                raise Finding("answer %r" % (rsp[:16],))
            length = unpack_header(rsp)[3]
            body = cbor.loads(rsp[HEADER_SIZE:]) if length == len(rsp) - HEADER_SIZE else None
            if not isinstance(body, dict):
                raise Finding("malformed answer %s" % bytes(rsp).hex())
            how = "error answer" if body.get("rc") or body.get("err") else "success answer"
        return how

    return run


def _requests():
    # Valid request packets (header + CBOR) for the server target's corpus.
    img = build(body_len=600)
    out = []
    for op, group, cmd, body in ((2, 0, 0, {"d": "hi"}), (0, 0, 6, {}), (0, 0, 7, {"format": "a"}),
                                 (0, 0, 8, {"query": "mode"}), (0, 1, 0, {}), (0, 1, 6, {}),
                                 (2, 1, 1, {"off": 0, "len": len(img), "image": 0, "sha": bytes(32),
                                            "data": img[:200]}),
                                 (2, 1, 1, {"off": 200, "data": img[200:400]}),
                                 (2, 1, 0, {"hash": bytes(32), "confirm": False}), (2, 1, 5, {"slot": 1})):
        raw = dumps(body)
        pkt = bytearray(HEADER_SIZE + len(raw))
        pack_header(pkt, 0, op, len(raw), group, 7, cmd)
        pkt[HEADER_SIZE:] = raw
        out.append(bytes(pkt))
    return out


# ---------------------------------------------------------------- runner

def _corpora():
    enc = FrameEncoder(512)
    frames = []
    for n in (8, 40, 93, 94, 200, 500):
        pkt = bytes((i * 7 + n) & 0xFF for i in range(n))
        frames.append(bytes(enc.encode(packet=pkt)))
    frames.append(b"uart:~$ " + frames[3] + b"log line\r\n" + frames[4])
    images = [build(), build(body_len=300, prot=[(0x50, bytes(4))], tlvs=[(0x24, bytes(64))]),
              build(flags=0x4), build(hdr_size=64, body_len=50)]
    headers = [bytes(8), bytes([3, 0, 0, 10, 0, 1, 7, 1]), bytes([0x0B, 0, 0xFF, 0xFF, 0, 1, 255, 1])]
    return {"cbor": _GOOD_RAW + [bytes.fromhex(h) for h in (
                "9f018202039f0405ffff", "bf61610161629f0203ffff", "5f42010243030405ff",
                "7f657374726561646d696e67ff", "1bffffffffffffffff", "3bffffffffffffffff")],
            "framing": frames, "header": headers, "mcuboot": images, "client": _GOOD_RAW,
            "server": _requests()}


class _Count:
    # How the cases ended: accepted, or which named error (for the report).
    def __init__(self):
        self.outcomes = {}

    def add(self, what):
        self.outcomes[what] = self.outcomes.get(what, 0) + 1


def fuzz(name, cases, seed=1, budget_s=None, count=None):
    """Run target ``name`` for ``cases`` inputs; returns ``(cases run, {finding: (count, example hex)})``.

    ``count`` (a ``_Count``) receives how each case ended.
    """
    rng = random.Random(seed)
    corpus = _corpora()[name]
    fn = {"cbor": lambda d, r: target_cbor(d), "framing": target_framing,
          "header": lambda d, r: target_header(d), "mcuboot": lambda d, r: target_mcuboot(d),
          "client": make_client_target, "server": make_server_target}[name]
    if name in ("client", "server"):
        fn = fn()
    findings = {}
    t0 = time.monotonic()
    done = 0
    for done in range(1, cases + 1):
        r = rng.random()
        if r < 0.05:
            data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
        else:
            data = mutate(rng, rng.choice(corpus), corpus)
        try:
            how = fn(data, rng)
            if count is not None:
                count.add(how)
        except Exception as e:  # noqa: BLE001 - every escape is a finding
            tb = traceback.extract_tb(e.__traceback__)[-1]
            key = "%s: %s at %s:%d" % (type(e).__name__, str(e)[:80], os.path.basename(tb.filename), tb.lineno)
            n, ex = findings.get(key, (0, data.hex()))
            findings[key] = (n + 1, ex)
        if budget_s is not None and time.monotonic() - t0 > budget_s:
            break
    return done, findings


TARGETS = ("cbor", "framing", "header", "mcuboot", "server", "client")


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(description="Fuzz smpdfu's decoders and the client (see the module doc).")
    p.add_argument("-n", "--cases", type=int, default=100000, help="cases per target (default 100000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("targets", nargs="*", default=list(TARGETS), metavar="TARGET", help=", ".join(TARGETS))
    a = p.parse_args(argv)
    total = 0
    for name in a.targets:
        t0 = time.monotonic()
        count = _Count()
        done, findings = fuzz(name, a.cases, a.seed, count=count)
        print("%-8s %7d cases in %5.1f s: %d finding(s); ended: %s" % (
            name, done, time.monotonic() - t0, len(findings),
            ", ".join("%s %d" % kv for kv in sorted(count.outcomes.items(), key=lambda kv: -kv[1]))))
        for key, (n, ex) in sorted(findings.items()):
            print("    %dx %s\n       input: %s" % (n, key, ex[:200]))
        total += len(findings)
        sys.stdout.flush()
    print("fuzz: %d finding(s)" % total)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
