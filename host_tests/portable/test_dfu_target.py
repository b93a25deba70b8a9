"""The dfu_target engine: SMPTarget into an in-process device (the portable
SMP server over RAM flash), FileTarget with power cuts.

Portable: pytest on CPython and the MicroPython runner.
"""

import os

from smpdfu.client import SMPClient
from smpdfu.dfu_file import FileTarget
from smpdfu.dfu_smp import SMPTarget, UploadLost
from smpdfu.dfu_smp_rare import Unvouched
from smpdfu.dfu_target import image_type
from smpdfu.errors import BadImage, ProtocolError
from smpdfu.transport import SerialTransport

from _portable import raises
from imagestream import ImageStream
from smpdev import SMPDevice

_SLOT = (1 << 20) + (64 << 10)  # room for a 1 MB image and its trailer
_MB_BODY = (1 << 20) - 72  # header + body + TLVs = exactly 1 MiB


class _Rand:
    """A small deterministic generator (the same numbers on every Python)."""

    def __init__(self, seed):
        self.x = seed

    def below(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return self.x % n


def _device(**kw):
    kw.setdefault("slot_size", _SLOT)
    dev = SMPDevice(**kw)
    return dev, SMPClient(SerialTransport(dev), timeout_ms=2000)


def _feed(t, stream, rnd, start=0, stop=None, max_split=8192):
    """Write stream[start:stop] into ``t`` in random pieces of 1 B .. max_split."""
    stop = stream.size if stop is None else stop
    buf = bytearray(max_split)
    mv = memoryview(buf)
    stream.seek(start)
    pos = start
    while pos < stop:
        n = 1 + rnd.below(max_split)
        if n > stop - pos:
            n = stop - pos
        stream.readinto(mv[:n])
        t.write(mv[:n])
        pos += n


def _pending(client):
    return [s for s in client.image_state() if s.pending]


def test_image_type():
    img = ImageStream(10)
    head = bytearray(8)
    img.readinto(head)
    assert image_type(head) == "mcuboot"
    assert image_type(head[:4]) == "mcuboot"
    assert image_type(head[:3]) is None
    assert image_type(b"\x00" * 32) is None
    assert image_type(b"PK\x03\x04") is None


def test_random_splits_of_a_1mb_image_land_exactly_in_the_slot():
    dev, c = _device()
    img = ImageStream(_MB_BODY)
    assert img.size == 1 << 20
    events = []
    t = SMPTarget(c, lambda e, v: events.append(e) if e != "progress" else None)
    t.init(img.size, sha=img.sha)
    assert t.offset() == 0
    _feed(t, img, _Rand(7))
    info = t.done(True)
    assert info.hash == img.image_hash and info.hash_verified
    assert info.file_sha == img.sha and info.file_size == img.size
    assert t.match is True
    assert dev.slot_sha(1, img.size) == img.sha  # the slot holds exactly the image
    assert dev.written == img.size and dev.oversize == 0
    assert events[:2] == ["erase_pending", "erase_done"] and events[-1] == "done"
    # nothing is pending until asked
    assert _pending(c) == []
    t.schedule_update()
    p = _pending(c)
    assert len(p) == 1 and p[0].hash == img.image_hash and not p[0].permanent


def test_resume_after_a_stop_at_a_random_byte():
    rnd = _Rand(11)
    for _ in range(3):
        dev, c = _device()
        img = ImageStream(150 * 1024 + rnd.below(4096))
        stop = 1 + rnd.below(img.size - 1)
        t = SMPTarget(c)
        t.init(img.size, sha=img.sha)
        _feed(t, img, rnd, stop=stop)
        t.done(False)  # the power cut on this side: abandon
        held = dev.upload_off
        assert held <= stop
        t2 = SMPTarget(c)
        t2.init(img.size, sha=img.sha)
        assert t2.offset() == 0  # a new upload starts at the header: see dfu_smp's doc
        _feed(t2, img, rnd)
        info = t2.done(True)
        assert info.hash == img.image_hash
        if held:
            assert t2.resumed_from == held  # the neighbour said where it stood
        assert t2.match is True
        assert dev.written == img.size  # no byte went twice into the slot
        assert dev.slot_sha(1, img.size) == img.sha


def _interrupted(img, rnd, stop, **kw):
    """A device holding ``img`` up to about ``stop`` (an upload abandoned there, as by a board power cut)."""
    dev, c = _device(**kw)
    t = SMPTarget(c)
    t.init(img.size, sha=img.sha)
    _feed(t, img, rnd, stop=stop)
    t.done(False)
    return dev, c


def _resume_skipping(c, img, rnd, head=512):
    """A new target fed the first ``head`` bytes, then from where ``offset()`` says: (target, offset)."""
    t = SMPTarget(c)
    t.init(img.size, sha=img.sha)
    assert t.offset() == 0
    _feed(t, img, rnd, stop=head)
    off = t.offset()
    _feed(t, img, rnd, start=off)
    return t, off


def test_resume_skips_what_the_neighbour_holds():
    # The board never sees the middle: offset() after the header is where the
    # neighbour stands, the rest is fed from there, and done() verifies the
    # whole file through the neighbour's match.
    rnd = _Rand(21)
    img = ImageStream(150 * 1024)
    hashed_end = 32 + img.body_len  # the skip stops at the TLV area: it is always seen
    for stop in (40000 + rnd.below(60000), img.size - 10):
        dev, c = _interrupted(img, rnd, stop)
        held = dev.upload_off
        assert 512 < held <= stop
        t, off = _resume_skipping(c, img, rnd)
        assert off == min(held, hashed_end)
        assert t.skipped == off - 512 and t.resumed_from == held
        info = t.done(True)
        assert t.match is True
        assert info.hash == img.image_hash and info.file_sha == img.sha and info.file_size == img.size
        assert not info.hash_verified  # the image hash needs bytes this board did not see
        assert dev.slot_sha(1, img.size) == img.sha  # byte-exact
        assert dev.written == img.size  # nothing went twice
        t.schedule_update()
        p = _pending(c)
        assert len(p) == 1 and p[0].hash == img.image_hash


def test_resume_skipping_a_corrupted_neighbour_copy_is_refused():
    # A byte of the neighbour's copy in the part this board skips goes bad: its
    # match is False, done() names it and nothing is marked for test.
    img = ImageStream(80 * 1024)
    dev, c = _interrupted(img, _Rand(4), 60000)
    buf = bytearray(1)
    dev.flash.read(1, 30000, buf)
    dev.flash.write(1, 30000, bytes([buf[0] ^ 0x20]))
    t, off = _resume_skipping(c, img, _Rand(5))
    assert off == dev.upload_off or off > 30000
    e = raises(ProtocolError, t.done, True)
    assert "hash mismatch" in str(e) and "sha given" in str(e), str(e)
    assert t.match is False
    assert _pending(c) == []
    raises(BadImage, t.schedule_update)
    assert _pending(c) == []


def test_resume_skipping_without_match_from_the_neighbour_is_refused():
    # A neighbour built without CONFIG_IMG_ENABLE_IMAGE_CHECK reports no match:
    # the skipped part cannot be verified, so the image is refused.
    img = ImageStream(40 * 1024)
    dev, c = _interrupted(img, _Rand(6), 30000, image_check=False)
    t, off = _resume_skipping(c, img, _Rand(7))
    assert off > 512 and t.skipped
    e = raises(Unvouched, t.done, True)
    assert isinstance(e, BadImage)
    assert "did not report 'match'" in str(e) and "not seen here" in str(e), str(e)
    assert _pending(c) == []
    raises(BadImage, t.schedule_update)
    # Fed from 0 instead, the same neighbour's image is verified here, whole.
    dev2, c2 = _interrupted(img, _Rand(6), 30000, image_check=False)
    t2 = SMPTarget(c2)
    t2.init(img.size, sha=img.sha)
    _feed(t2, img, _Rand(8))
    assert t2.offset() == img.size and t2.skipped == 0
    assert t2.done(True).hash_verified


def test_offset_without_sha_or_header_does_not_skip():
    img = ImageStream(20000)
    dev, c = _interrupted(img, _Rand(9), 15000)
    t = SMPTarget(c)
    t.init(img.size)  # no sha: the neighbour cannot tell whose bytes it holds
    _feed(t, img, _Rand(10), stop=512)
    assert t.offset() == 512
    t.init(img.size, sha=img.sha)
    _feed(t, img, _Rand(10), stop=31)  # not the whole MCUboot header yet
    assert t.offset() == 31
    _feed(t, img, _Rand(10), start=31)
    assert t.done(True).hash == img.image_hash and t.skipped == 0


def test_one_corrupted_byte_is_refused_and_nothing_is_pending():
    for where in (100, 40000, 32 + 50000 + 10):  # body, body, the SHA256 TLV value
        dev, c = _device()
        img = ImageStream(50000, corrupt_at=where)
        t = SMPTarget(c)
        t.init(img.size, sha=img.sha)
        _feed(t, img, _Rand(where))
        e = raises(BadImage, t.done, True)
        assert "hash mismatch" in str(e), str(e)
        assert _pending(c) == []
        raises(BadImage, t.schedule_update)
        assert _pending(c) == []


def test_corrupted_byte_without_sha_is_caught_by_the_image_check():
    dev, c = _device()
    img = ImageStream(20000, corrupt_at=5000)
    t = SMPTarget(c)
    t.init(img.size)
    _feed(t, img, _Rand(3))
    e = raises(BadImage, t.done, True)
    assert "image hash mismatch" in str(e)
    assert _pending(c) == []


def test_short_stream_and_overrun_are_named():
    dev, c = _device()
    img = ImageStream(3000)
    t = SMPTarget(c)
    t.init(img.size, sha=img.sha)
    _feed(t, img, _Rand(5), stop=img.size - 10)
    e = raises(BadImage, t.done, True)
    assert "incomplete" in str(e)
    t.init(img.size, sha=img.sha)
    e = raises(ValueError, t.write, bytearray(img.size + 1))
    assert "overruns" in str(e)


class _ShortReads:
    """``stream`` read at most ``most`` bytes at a time (a UART, a socket), ending early at ``stop``."""

    def __init__(self, stream, most, stop=None):
        self.s = stream
        self.most = most
        self.left = stream.size if stop is None else stop

    def readinto(self, buf):
        n = min(len(buf), self.most, self.left)
        n = self.s.readinto(memoryview(buf)[:n])
        self.left -= n
        return n


def test_write_reads_a_stream_straight_into_a_small_ring():
    # A stream given to write(): the rest of the image is read into the resend
    # ring itself (no buffer of the caller's), in short reads, the ring far
    # smaller than the image and wrapping at odd places; all checked and resumed.
    img = ImageStream(60000)
    dev, c = _interrupted(img, _Rand(12), 20000, buf_size=2048)
    held = dev.upload_off
    dev.max_request = 0
    t = SMPTarget(c, ring=700)  # one request of at most 700 bytes in flight
    t.init(img.size, sha=img.sha)
    img.seek(0)
    t.write(_ShortReads(img, 333))
    assert t.offset() == img.size
    info = t.done(True)
    assert info.hash == img.image_hash and info.hash_verified and t.match is True
    assert t.resumed_from == held and dev.written == img.size  # nothing went twice
    assert dev.max_request == 700 and dev.slot_sha(1, img.size) == img.sha
    # a stream that ends early is named, with where it ended
    dev, c = _device()
    t = SMPTarget(c)
    t.init(img.size, sha=img.sha)
    img.seek(0)
    e = raises(ProtocolError, t.write, _ShortReads(img, 1000, stop=5000))
    assert "stream ended at 5000 of %d" % img.size in str(e), str(e)
    t.done(False)


def test_bad_sizes_are_named():
    dev, c = _device()
    e = raises(ValueError, SMPTarget(c).init, 0)
    assert "nothing to upload" in str(e)
    e = raises(ProtocolError, SMPTarget(c, ring=60).init, 1000, 0, bytes(32))
    assert "no room for upload data in a 60-byte request" in str(e), str(e)


def test_device_reset_mid_stream_then_feed_again():
    dev, c = _device()
    img = ImageStream(30000)
    dev.reset_at = 10000  # the first upload request at or past this offset resets the device
    t = SMPTarget(c, timeout_ms=300, retries=1)
    t.init(img.size, sha=img.sha)
    e = raises(UploadLost, _feed, t, img, _Rand(9))
    assert e.offset == 0 and "lost the upload" in str(e)
    assert isinstance(e, ProtocolError)
    dev.reset_at = None
    t.init(img.size, sha=img.sha)
    _feed(t, img, _Rand(10))
    assert t.done(True).hash == img.image_hash
    assert dev.slot_sha(1, img.size) == img.sha


# ------------------------------------------------------------ FileTarget

_TMP = "dfu_target_tmp"


def _tmpdir():
    try:
        os.mkdir(_TMP)
    except OSError:
        pass
    return _TMP


def _cleanup(path):
    for p in (path, path + ".part", path + ".progress", path + ".progress.tmp"):
        _remove(p)
    try:
        os.rmdir(_TMP)
    except OSError:
        pass


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _read_all(path):
    with open(path, "rb") as f:
        return f.read()


def _image_bytes(img):
    b = bytearray(img.size)
    img.seek(0)
    img.readinto(b)
    return bytes(b)


def test_file_target_power_cut_at_every_write_boundary():
    img = ImageStream(6000)
    good = _image_bytes(img)
    rnd = _Rand(21)
    cuts = []  # write boundaries: (start, end) of each write
    pos = 0
    while pos < img.size:
        n = min(1 + rnd.below(700), img.size - pos)
        cuts.append((pos, pos + n))
        pos += n
    path = _tmpdir() + "/image.bin"
    for k in range(len(cuts) + 1):
        _remove(path)
        _remove(path + ".part")
        _remove(path + ".progress")
        t = FileTarget(path, save_every=1000)
        t.init(img.size, sha=img.sha)
        for a, b in cuts[:k]:
            t.write(good[a:b])
        # The cut: what was past the last save may be lost, partly written or junk.
        t._f.flush()
        t._f.close()
        part = path + ".part"
        written = cuts[k - 1][1] if k else 0
        saved = t.saved
        keep = saved + rnd.below(written - saved + 1)
        junk = bytes((i * 7 + k) & 0xFF for i in range(rnd.below(written - keep + 1)))
        with open(part, "wb") as f:
            f.write(good[:keep] + junk)
        assert not _exists(path)  # nothing at path until it verified
        t2 = FileTarget(path, save_every=1000)
        t2.init(img.size, sha=img.sha)
        off = t2.offset()
        assert off == saved, (k, off, saved)
        t2.write(good[off:])
        info = t2.done(True)
        assert info.hash == img.image_hash and info.file_sha == img.sha
        assert _read_all(path) == good, k  # byte-identical
        assert not _exists(part)
        # done is saved: a new target with the same sha holds it all
        t3 = FileTarget(path)
        t3.init(img.size, sha=img.sha)
        assert t3.offset() == img.size
        assert t3.done(True).hash == img.image_hash
    _cleanup(path)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def test_file_target_refuses_a_bad_image_and_starts_over():
    img = ImageStream(3000, corrupt_at=1000)
    path = _tmpdir() + "/bad.bin"
    t = FileTarget(path)
    t.init(img.size, sha=img.sha)
    _feed(t, img, _Rand(4), max_split=500)
    e = raises(BadImage, t.done, True)
    assert "hash mismatch" in str(e)
    raises(BadImage, t.schedule_update)
    t.init(img.size, sha=img.sha)
    assert t.offset() == 0  # a bad image is not resumed
    t.done(False)
    assert not _exists(path)  # a file that did not verify never lands at path
    _cleanup(path)
