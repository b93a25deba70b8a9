"""The whole update of a neighbour, step by step, resumable after a power cut.

:class:`Updater` drives one MCUboot image onto a device over an
:class:`~smpdfu.client.SMPClient`::

    connect -> compare versions -> upload -> test -> reset -> wait -> confirm

Every run starts from what the *device* reports (its image state list), so a
run interrupted anywhere (power loss on this board, a lost link) resumes
safely: an image already uploaded is not sent again, one already marked for
test is just booted, one already running unconfirmed is confirmed. The
optional ``record``/``previous`` journal (e.g. a small status file kept by the
app) only settles the one case the device cannot tell apart: an image that
was tested and then reverted looks like one uploaded and never tested.

Safety rules: nothing is confirmed unless the device reports the new image
*active*; an image that is not ours (another unconfirmed or pending image) is
never confirmed, reset or overwritten: the run stops with a message instead.

Only the upload step lives here. The upload is where a board's heap peaks, so
the other phases' code is loaded for its phase and unloaded after it
(:func:`unload`): :mod:`smpdfu.before_upload` (connect, compare, plan),
:mod:`smpdfu.after_upload` (test, reset, confirm) and :mod:`smpdfu.update_report`
(failure messages, the summary line, the status dict).
"""

import gc
import sys

from .compat import ticks_diff, ticks_ms
from .errors import DeviceError, SMPError

UPDATED = "updated"
UP_TO_DATE = "up-to-date"
REVERTED = "reverted"
FAILED = "failed"

# Journal stages, in order; a stage is recorded *before* the device is asked
# to do it, so after a power cut the journal is never behind the device.
STAGE_UPLOAD = "upload"
STAGE_TEST = "test"
STAGE_RESET = "reset"
STAGE_CONFIRM = "confirm"
STAGE_DONE = "done"


def unload(name):
    """Forget the module ``name`` (``"smpdfu.before_upload"``, ``"smpdfu_board"``...)
    and collect, so that its code's heap is free for what comes next (call it
    once nothing refers to the module any more); the next import loads it
    again. For code needed in one phase of the update only. Nothing is
    unloaded on CPython: memory is not scarce there, and a module loaded from
    its path (tests) could not be imported again by name.
    """
    if sys.implementation.name == "cpython" or sys.modules.pop(name, None) is None:
        return
    pkg, _, sub = name.rpartition(".")
    pkg = sys.modules.get(pkg)
    if pkg is not None and hasattr(pkg, sub):
        delattr(pkg, sub)  # `from . import x` made it an attribute of the package too
    # Now, not at the next collection: what is allocated next can reuse its blocks
    # instead of settling above them (holes the upload's buffers would not fit).
    gc.collect()


class UpdateResult:
    """What :meth:`Updater.run` did.

    - ``outcome``: ``"updated"``, ``"up-to-date"``, ``"reverted"`` or ``"failed"``;
    - ``message``: one human sentence saying why;
    - ``version_before`` / ``version_after``: the neighbour's running version
      (str, None when unknown) before and after; ``image_version``;
    - ``bytes``: bytes uploaded in this run (0 when nothing was sent);
    - ``seconds``: wall time of the run (float); ``upload_seconds``;
    - ``error``: the exception behind a failure, or None;
    - ``transient``: True when retrying later may succeed (no answer, timeout,
      a broken link): the app then keeps the image for the next boot;
    - ``resumed``: True when the run picked up a step left by an earlier one.

    :func:`smpdfu.update_report.summary` and :func:`~smpdfu.update_report.as_dict`
    put it in words.
    """

    def __init__(self, outcome, message, image_version=None):
        self.outcome = outcome
        self.message = message
        self.image_version = image_version
        self.version_before = None
        self.version_after = None
        self.bytes = 0
        self.seconds = 0.0
        self.upload_seconds = 0.0
        self.error = None
        self.transient = False
        self.resumed = False

    @property
    def ok(self):
        """True for "updated" and "up-to-date"."""
        return self.outcome == UPDATED or self.outcome == UP_TO_DATE


class _Stop(Exception):
    # Ends a run early (internal): args (outcome, message[, error[, transient]]).
    pass


class Updater:
    """Updates one neighbour through ``client`` (an :class:`~smpdfu.client.SMPClient`).

    - ``log(text)``: step messages (default ``print``);
    - ``progress(done, total)``: during the upload;
    - ``record(stage, hash_hex)``: called before each step that changes the
      device (a journal; may be None);
    - ``previous``: the journal's last ``(stage, hash_hex)`` from an earlier
      run, or None;
    - ``connect_ms``: how long to look for the neighbour at the start;
    - ``reset_wait_ms``: how long it may take to come back after a reset
      (MCUboot swapping two slots takes seconds on a real nRF);
    - ``allow_downgrade``: upload even when the neighbour runs a newer version;
    - ``upload_options``: extra keyword arguments for the upload (window...);
      a ``ring`` bytearray there serves one upload and is dropped after it;
    - ``permanent``: mark the image permanent instead of for a test boot
      (MCUboot then keeps it without a confirm);
    - ``confirm``: False stops after the test boot (the neighbour reverts at
      its next reset).

    The upload goes through the dfu_target engine (:mod:`smpdfu.dfu_smp`),
    which checks the image again while it streams: bytes that are not the
    verified image are never marked for test.
    """

    def __init__(self, client, log=None, progress=None, record=None, previous=None,
                 connect_ms=5000, reset_wait_ms=30000, allow_downgrade=False,
                 upload_options=None, permanent=False, confirm=True):
        self.client = client
        self.log = log or print
        self.progress = progress
        self.record = record
        self.previous = previous
        self.connect_ms = connect_ms
        self.reset_wait_ms = reset_wait_ms
        self.allow_downgrade = allow_downgrade
        self.upload_options = upload_options or {}
        self.permanent = permanent
        self.confirm = confirm  # False: stop after the test boot
        self.upload_result = None  # the UploadResult of this run's upload, if any

    def _journal(self, stage, info):
        if self.record is not None:
            self.record(stage, info.hash_hex())

    def slots(self):
        """``(active, other)``: the device's running slot of image 0 and its other slot (or None)."""
        active = other = None
        for s in self.client.image_state():
            if s.image == 0:
                if s.active:
                    active = s
                else:
                    other = s
        if active is None:
            raise _Stop(FAILED, "no active image on the neighbour")
        return active, other

    def _started(self, off, total):
        # Said when the device answers offset 0, not only in the summary.
        if off >= total:
            self.log("the neighbour holds all %d bytes already" % total)
        elif off:
            self.log("resuming the upload at byte %d of %d" % (off, total))

    def upload(self, stream, info, res):
        """The upload step: send the image (resuming a partial upload the device still holds)."""
        size = info.file_size or info.total_size
        self._journal(STAGE_UPLOAD, info)
        self.log("uploading %s: %d bytes" % (info.version_str, size))
        gc.collect()  # the garbage of the steps so far: the upload's buffers are made in the space it frees
        try:
            r = self.client.upload(stream, size, sha=info.file_sha, progress=self.progress, verify=True,
                                   started=self._started, **self.upload_options)
        except DeviceError as e:
            if e.name == "INVALID_IMAGE_TOO_LARGE":
                from .update_report import too_large

                raise too_large(self.client, info, size, e)
            raise
        finally:
            opts = self.upload_options
            if type(opts.get("ring")) is bytearray:
                del opts["ring"]  # a buffer given for this upload: its heap is the next steps'
        self.upload_result = r
        if r.match is False:
            raise _Stop(FAILED, "the neighbour's SHA-256 of the image differs")
        res.bytes = n = r.size - r.resumed_from
        res.upload_seconds = t = r.elapsed_ms / 1000
        self.log("uploaded %d bytes in %.1f s (%.1f kB/s)" % (n, t, n / t / 1000 if t > 0 else 0))

    def run(self, stream, info):
        """Update the neighbour to the image ``info`` (from :func:`smpdfu.mcuboot.verify`) read from ``stream``.

        ``stream`` is positioned at the image's first byte. Returns an
        :class:`UpdateResult`; expected failures are reported there, not raised.
        """
        t0 = ticks_ms()
        unload("smpdfu.after_upload")  # an earlier run's steps: not resident during this upload
        unload("smpdfu.update_report")
        res = UpdateResult(FAILED, "", info.version_str)
        err = None
        try:
            from . import before_upload as b

            step, active = b.start(self, info, res)
            b = None
            unload("smpdfu.before_upload")
            if step == STAGE_UPLOAD:
                self.upload(stream, info, res)
                step = STAGE_TEST
        except (_Stop, SMPError, OSError) as e:
            err = e
        b = None
        # What the steps so far loaded is not needed again in this run (the
        # upload engine, loaded by the caller, even when nothing was sent):
        # room for the next steps, or for the report of a failure.
        for name in ("before_upload", "upload", "dfu_smp_rare", "dfu_smp"):
            unload("smpdfu." + name)
        if err is None and step:
            try:
                from . import after_upload as a

                a.finish(self, info, step, active, res)
            except (_Stop, SMPError, OSError) as e:
                err = e
            a = None
            unload("smpdfu.after_upload")  # room for what the caller does next (its status, its log)
        if err is not None:
            from .update_report import failed

            failed(self, info, res, err)
        res.seconds = ticks_diff(ticks_ms(), t0) / 1000
        return res
