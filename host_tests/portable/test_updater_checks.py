"""Updater: check first, send nothing that is not needed, say what happens when it
starts (issue 9, items 9, 10 and 11). Against the in-memory SMP device. Portable.
"""

import io
import sys

import smpdfu
from smpdfu import mcuboot
from smpdfu.client import SMPClient
from smpdfu.transport import SerialTransport
from smpdfu.updater import Updater

from _portable import on_micropython
from mcuimg import build
from smpdev import SMPDevice


def _setup(version=(1, 1, 0, 0), body_len=2000, **dev_kw):
    dev = SMPDevice(**dev_kw)
    c = SMPClient(SerialTransport(dev), timeout_ms=300)
    img = build(version=version, body_len=body_len)
    info = mcuboot.verify(io.BytesIO(img))
    return dev, c, img, info


def _run(c, img, info, **kw):
    log = []
    res = Updater(c, log=log.append, connect_ms=500, reset_wait_ms=300, **kw).run(io.BytesIO(img), info)
    return res, log


def test_image_already_running_sends_nothing():
    img = build(version=(1, 1, 0, 0), body_len=2000)
    dev, c, _img, info = _setup(running=img)
    res, log = _run(c, img, info)
    assert res.outcome == "up-to-date" and res.bytes == 0
    assert dev.upload_requests == 0 and dev.erases == 0
    assert res.message == "the neighbour already runs 1.1.0: nothing sent"


def test_downgrade_needs_the_flag_and_sends_nothing_without_it():
    dev, c, img, info = _setup(version=(0, 9, 0, 0))
    res, log = _run(c, img, info)
    assert res.outcome == "failed" and "not downgrading" in res.message and "allow_downgrade" in res.message
    assert dev.upload_requests == 0 and dev.erases == 0
    res, log = _run(c, img, info, allow_downgrade=True)
    assert dev.upload_requests > 0 and dev.written == len(img)
    assert res.bytes == len(img)


def test_image_already_in_slot_1_is_not_sent_again():
    dev, c, img, info = _setup()
    dev.put_image(1, img)
    res, log = _run(c, img, info)
    assert dev.upload_requests == 0
    assert "resuming: the image is already on the neighbour, nothing sent (next step: test)" in log
    assert res.resumed and res.bytes == 0


def test_resume_is_said_when_it_starts():
    dev, c, img, info = _setup()
    dev.start_upload(len(img), info.file_sha, img[:1200])
    seen = []
    res, log = _run(c, img, info, progress=lambda off, total: seen.append(off))
    start = log.index("resuming the upload at byte 1200 of %d" % len(img))
    assert log[start + 1].startswith("uploaded %d bytes" % (len(img) - 1200))
    assert seen[0] == 1200 and seen[-1] == len(img)  # the caller's progress still gets every report
    assert dev.written == len(img) - 1200


def test_a_fresh_upload_reports_no_resume():
    dev, c, img, info = _setup()
    res, log = _run(c, img, info)
    assert not any("resuming" in line or "already holds" in line for line in log), log
    assert res.bytes == len(img)


def test_image_too_large_names_the_image_and_the_slots():
    dev, c, img, info = _setup(body_len=9000, slot_size=0x2000)
    res, log = _run(c, img, info)
    assert res.outcome == "failed"
    assert res.message == ("image too large: 1.1.0 is %d bytes; the device's image 0 slots are 8192/8192 bytes"
                           % len(img)), res.message


def _phase_modules():
    # The steps before and after the upload and the failure texts: loaded for their phase only.
    names = ("before_upload", "after_upload", "update_report")
    return [n for n in names if "smpdfu." + n in sys.modules or hasattr(smpdfu, n)]


def test_only_the_upload_step_is_loaded_while_the_upload_runs():
    # The upload is where a board's heap peaks: the other phases' code is
    # unloaded by then (on MicroPython; CPython keeps its modules).
    for _ in range(2):  # the second run too, after the first one's steps were loaded
        dev, c, img, info = _setup()
        seen = []
        res, log = _run(c, img, info, progress=lambda off, total: seen.append(_phase_modules()))
        # (this device does not boot the new image: the run ends waiting for it)
        assert seen and dev.written == len(img) and "marking 1.1.0 for a test boot" in log, log
        if on_micropython():
            assert seen == [[]] * len(seen), seen[0]
            assert "smpdfu.dfu_smp" not in sys.modules  # the upload engine too, once it is done


def test_a_failed_run_leaves_no_step_loaded():
    # The app loads the upload engine before the run; a run that stops before
    # the upload (here: no downgrade) unloads it with the step before it: the
    # report of the failure, and the app's own steps after it, get their room.
    import smpdfu.upload  # noqa: F401 - what the app loads before the run

    dev, c, img, info = _setup(version=(0, 9, 0, 0))
    res, log = _run(c, img, info)
    assert res.outcome == "failed" and "not downgrading" in res.message
    if on_micropython():
        names = ("before_upload", "upload", "dfu_smp", "after_upload")
        assert [n for n in names if "smpdfu." + n in sys.modules] == []


def test_a_ring_given_serves_its_upload_and_is_dropped_after_it():
    # The app makes the upload's ring early (smpdfu_board.upload_options); the
    # upload uses it, and the steps after it get its heap back. A size (an int)
    # is an option like the others: it stays for the next run.
    dev, c, img, info = _setup(buf_size=512, buf_count=4)
    ring = bytearray(600)
    opts = {"ring": ring}
    res, log = _run(c, img, info, upload_options=opts)
    assert res.bytes == len(img) and dev.written == len(img)
    assert dev.max_request == 508 and dev.max_unread == 1  # one request: what the ring holds
    assert opts == {} and ring != bytearray(600)  # the image went through it
    dev, c, img, info = _setup(buf_size=512, buf_count=4)
    opts = {"ring": 600}
    res, log = _run(c, img, info, upload_options=opts)
    assert res.bytes == len(img) and opts == {"ring": 600}
