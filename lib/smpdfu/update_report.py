"""An update run's outcome in words: why it failed, the summary line, the status dict.

Apart from :mod:`smpdfu.updater` so that none of it is in RAM while the
upload runs (where a board's heap peaks): it is loaded when a run fails, and
by the app once the run is over.
"""

from .errors import BadImage, DeviceError, SMPError
from .updater import FAILED, REVERTED, STAGE_DONE, _Stop


def failed(u, info, res, e):
    """Fill ``res`` from the exception ``e`` that ended the run of Updater ``u``."""
    res.outcome = FAILED
    res.error = e
    if isinstance(e, _Stop):  # (outcome, message[, error[, transient]])
        a = e.args
        res.outcome, res.message, res.error, res.transient = a + (None, False)[len(a) - 2:]
        if res.outcome == REVERTED:
            u._journal(STAGE_DONE, info)
            res.version_after = None
            try:
                res.version_after = u.slots()[0].version
            except Exception:  # noqa: BLE001 - best effort, for the summary only
                pass
    elif isinstance(e, DeviceError):
        res.message = "the neighbour refused: %s" % e
    elif isinstance(e, BadImage):
        res.message = "the image did not verify while it was sent: %s (nothing marked for test)" % e
    elif isinstance(e, SMPError):  # timeouts, broken frames, protocol errors: the link
        res.message = "lost the neighbour: %s (nothing confirmed; the next run resumes)" % e
        res.transient = True
    else:  # OSError: the UART itself
        res.message = "UART error: %s" % e
        res.transient = True


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


def too_large(client, info, size, e):
    """The exception ending a run whose image the device found too large (``e``)."""
    return _Stop(FAILED, "image too large: %s is %d bytes; %s" % (info.version_str, size, slot_text(client)), e)


def summary(res):
    """One line: ``updated: 1.0.0 -> 1.1.0, 49152 bytes in 6.1 s (8.9 kB/s)`` (the upload's rate)."""
    t = res.upload_seconds or res.seconds
    return "%s: %s -> %s, %d bytes in %.1f s (%.1f kB/s)" % (
        res.outcome, res.version_before or "?", res.version_after or "?", res.bytes, res.seconds,
        res.bytes / t / 1000 if res.bytes and t > 0 else 0.0)


def as_dict(res):
    """The result as a plain dict (for a JSON status file)."""
    return {
        "outcome": res.outcome, "message": res.message,
        "image_version": res.image_version, "before": res.version_before,
        "after": res.version_after, "bytes": res.bytes,
        "seconds": round(res.seconds, 2), "upload_seconds": round(res.upload_seconds, 2),
        "transient": res.transient, "resumed": res.resumed,
    }
