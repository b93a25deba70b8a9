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
"""

from binascii import hexlify

from .compat import ticks_diff, ticks_ms
from .errors import BadImage, DeviceError, SMPError, SMPTimeout

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

def parse_version(s):
    """``"1.2.3"`` or ``"1.2.3.4"`` (as a state list shows it) -> ``(1, 2, 3, 4)``.

    Unparsable text gives None (compared as unknown: never "up to date").
    """
    try:
        parts = [int(p) for p in str(s).split("+")[0].split(".")]
    except ValueError:
        return None
    if not parts or len(parts) > 4:
        return None
    while len(parts) < 4:
        parts.append(0)
    return tuple(parts)


def slot_text(client, image=0):
    """What the device says its slots for ``image`` hold: for a "too large" message."""
    try:
        for im in client.slot_info():
            if im["image"] == image:
                m = im.get("max_image_size")
                return "the device's image %d slots are %s bytes%s" % (
                    image, "/".join(str(s["size"]) for s in im["slots"]),
                    ", at most %d for an image (its trailer needs the rest)" % m if m else "")
    except SMPError:
        pass
    return "the device's slot for image %d is smaller (it does not report its size)" % image


def _hex(h):
    return hexlify(h).decode() if h else ""


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

    @property
    def rate(self):
        """Upload rate in bytes per second (0.0 when nothing was uploaded)."""
        t = self.upload_seconds or self.seconds
        return self.bytes / t if self.bytes and t > 0 else 0.0

    def summary(self):
        """One line: ``updated: 1.0.0 -> 1.1.0, 49152 bytes in 6.1 s (8.9 kB/s)``."""
        return "%s: %s -> %s, %d bytes in %.1f s (%.1f kB/s)" % (
            self.outcome, self.version_before or "?", self.version_after or "?",
            self.bytes, self.seconds, self.rate / 1000)

    def to_dict(self):
        """The result as a plain dict (for a JSON status file)."""
        return {
            "outcome": self.outcome, "message": self.message,
            "image_version": self.image_version, "before": self.version_before,
            "after": self.version_after, "bytes": self.bytes,
            "seconds": round(self.seconds, 2), "upload_seconds": round(self.upload_seconds, 2),
            "transient": self.transient, "resumed": self.resumed,
        }


class _Stop(Exception):
    # Ends a run early with an outcome (internal).
    def __init__(self, outcome, message, error=None, transient=False):
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.error = error
        self.transient = transient


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
        self.confirm_boot = confirm
        self.upload_result = None  # the UploadResult of this run's upload, if any

    # ------------------------------------------------------------ helpers

    def _journal(self, stage, info):
        if self.record is not None:
            self.record(stage, info.hash_hex())

    def _slots(self):
        # (active, other): the running slot of image 0 and the other slot (or None).
        active = other = None
        for s in self.client.image_state():
            if s.image != 0:
                continue
            if s.active:
                active = s
            else:
                other = s
        if active is None:
            raise _Stop(FAILED, "the neighbour reports no active image")
        return active, other

    def _previous_stage(self, info):
        p = self.previous
        if p and p[1] == info.hash_hex():
            return p[0]
        return None

    # ------------------------------------------------------------ steps

    def connect(self):
        """Wait for the neighbour to answer an echo; stop with a clear failure if it does not."""
        try:
            self.client.wait_until_ready(self.connect_ms)
        except SMPTimeout as e:
            raise _Stop(FAILED, "no answer from the neighbour within %d ms: check the wiring (TX->RX, RX->TX, GND), "
                        "the baud rate, and that it runs MCUmgr over UART" % self.connect_ms, e, True)

    def plan(self, info, active, other):
        """The first step still needed for ``info``, from the device's slots.

        Returns one of ``"up-to-date"``, ``"confirm"``, ``"reset"``, ``"test"``,
        ``"reverted"``, ``"upload"``; stops the run on a state it must not touch.
        """
        ours = info.hash
        if active.hash == ours:
            return "up-to-date" if active.confirmed else "confirm"
        if not active.confirmed:
            # A test boot of some other image is in progress: confirming or
            # resetting it is its owner's decision, not ours.
            raise _Stop(FAILED, "the neighbour runs an unconfirmed image %s (%s) that is not this one; "
                        "confirm or revert it first" % (active.version, _hex(active.hash)[:16]))
        running = parse_version(active.version)
        if running is not None and running == tuple(info.version):
            return "up-to-date"
        if other is not None and other.hash == ours:
            if other.pending:
                return "reset"
            if self._previous_stage(info) in (STAGE_RESET, STAGE_CONFIRM):
                return "reverted"
            return "test"
        if other is not None and other.pending:
            raise _Stop(FAILED, "slot %d holds another pending image %s; reset the neighbour (to boot it) "
                        "or cancel it first" % (other.slot, other.version))
        if running is not None and running > tuple(info.version) and not self.allow_downgrade:
            raise _Stop(FAILED, "the neighbour runs %s, newer than the image's %s: not downgrading "
                        "(set allow_downgrade)" % (active.version, info.version_str))
        return "upload"

    def _started(self, off, total):
        # Said when the device answers offset 0, not only in the summary.
        if off >= total:
            self.log("the neighbour already holds all %d bytes (an earlier upload): nothing more to send" % total)
        elif off:
            self.log("resuming the upload at byte %d of %d (the neighbour kept an interrupted one)" % (off, total))

    def upload(self, stream, info, res):
        """Send the image (resuming a partial upload the device still holds)."""
        size = info.file_size or info.total_size
        self._journal(STAGE_UPLOAD, info)
        self.log("uploading %s: %d bytes" % (info.version_str, size))
        try:
            r = self.client.upload(stream, size, sha=info.file_sha, progress=self.progress, verify=True,
                                   started=self._started, **self.upload_options)
        except DeviceError as e:
            if e.name == "INVALID_IMAGE_TOO_LARGE":
                raise _Stop(FAILED, "image too large: %s is %d bytes; %s" % (
                    info.version_str, size, slot_text(self.client)), e)
            raise
        self.upload_result = r
        if r.match is False:
            raise _Stop(FAILED, "the neighbour's copy of the image does not match (SHA-256 differs)")
        res.bytes = r.size - r.resumed_from
        res.upload_seconds = r.elapsed_ms / 1000
        self.log("uploaded %d bytes in %.1f s (%.1f kB/s)" % (res.bytes, res.upload_seconds, res.rate / 1000))

    # ------------------------------------------------------------ run

    def run(self, stream, info):
        """Update the neighbour to the image ``info`` (from :func:`smpdfu.mcuboot.verify`) read from ``stream``.

        ``stream`` is positioned at the image's first byte. Returns an
        :class:`UpdateResult`; expected failures are reported there, not raised.
        """
        t0 = ticks_ms()
        res = UpdateResult(FAILED, "", info.version_str)
        try:
            self.connect()
            active, other = self._slots()
            res.version_before = res.version_after = active.version
            self.log("neighbour runs %s%s; image is %s" % (
                active.version, "" if active.confirmed else " (unconfirmed)", info.version_str))
            step = self.plan(info, active, other)
            if step == "up-to-date":
                res.outcome = UP_TO_DATE
                res.message = "the neighbour already runs %s: nothing sent" % active.version
                if self._previous_stage(info) in (STAGE_RESET, STAGE_CONFIRM):
                    res.outcome = UPDATED  # finished by an earlier run, cut short before recording
                    res.message = "the neighbour runs %s, confirmed" % active.version
                self._journal(STAGE_DONE, info)
                self.log(res.message)
                return res
            if step == "reverted":
                raise _Stop(REVERTED, "the neighbour reverted to %s after a test boot of %s; nothing confirmed"
                            % (active.version, info.version_str))
            if step != "upload":
                res.resumed = True
                self.log("resuming: the image is already on the neighbour, nothing sent (next step: %s)" % step)
            if step == "upload":
                self.upload(stream, info, res)
                step = "test"
            from . import after_upload as after  # only now: not resident during the upload

            if step == "test":
                after.test(self, info)
                step = "reset"
            if step == "reset":
                active = after.reset(self, info)
                self.log("neighbour is back, running %s%s" % (
                    active.version, "" if active.confirmed else " (test boot)"))
            if not self.confirm_boot and not active.confirmed:
                after.leave_unconfirmed(self, info, active, res)
                return self._finish(res, t0)
            active = after.confirm(self, info, active)
            res.version_after = active.version
            res.outcome = UPDATED
            res.message = "the neighbour now runs %s, confirmed" % active.version
            self._journal(STAGE_DONE, info)
        except _Stop as e:
            res.outcome = e.outcome
            res.message = e.message
            res.error = e.error
            res.transient = e.transient
            if e.outcome == REVERTED:
                res.version_after = None
                self._journal(STAGE_DONE, info)
        except DeviceError as e:
            res.outcome = FAILED
            res.message = "the neighbour refused: %s" % e
            res.error = e
        except BadImage as e:
            res.outcome = FAILED
            res.message = "the image did not verify while it was sent: %s (nothing marked for test)" % e
            res.error = e
        except SMPError as e:  # timeouts, broken frames, protocol errors: the link
            res.outcome = FAILED
            res.message = "lost the neighbour: %s (nothing confirmed; the next run resumes)" % e
            res.error = e
            res.transient = True
        except OSError as e:  # the UART itself
            res.outcome = FAILED
            res.message = "UART error: %s" % e
            res.error = e
            res.transient = True
        return self._finish(res, t0)

    def _finish(self, res, t0):
        res.seconds = ticks_diff(ticks_ms(), t0) / 1000
        if res.outcome == REVERTED and res.version_after is None:
            try:
                res.version_after = self._slots()[0].version
            except Exception:  # noqa: BLE001 - best effort, for the summary only
                pass
        return res
