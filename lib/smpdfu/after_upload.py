"""The update's steps after the upload: test boot, reset and wait, confirm.

Split from :mod:`smpdfu.updater` so that their code is not in RAM while the
upload runs (the upload is where a board's heap peaks): :meth:`Updater.run
<smpdfu.updater.Updater.run>` imports this module once the image is on the
neighbour and calls :func:`finish`. Each step takes the
:class:`~smpdfu.updater.Updater` as ``u``.
"""

from .compat import const, sleep_ms, ticks_diff, ticks_ms
from .errors import FrameError, LinkError, ProtocolError, SMPTimeout
from .updater import FAILED, REVERTED, STAGE_CONFIRM, STAGE_DONE, STAGE_RESET, STAGE_TEST, UPDATED, _Stop

_POLL_MS = const(200)


def finish(u, info, step, active, res):
    """The steps from ``step`` (``"test"``, ``"reset"`` or ``"confirm"``) on; ``active``: the running slot
    before them. Fills ``res`` when the neighbour runs the image (confirmed, or in a test boot with
    ``confirm=False``)."""
    if step == STAGE_TEST:
        test(u, info)
        step = STAGE_RESET
    if step == STAGE_RESET:
        active = reset(u, info)
        u.log("neighbour is back, running %s%s" % (active.version, "" if active.confirmed else " (test boot)"))
    if not u.confirm and not active.confirmed:
        leave_unconfirmed(u, info, active, res)
        return
    active = confirm(u, info, active)
    res.version_after = active.version
    res.outcome = UPDATED
    res.message = "the neighbour now runs %s, confirmed" % active.version
    u._journal(STAGE_DONE, info)


def test(u, info):
    """Mark the uploaded image to be booted once (MCUboot test swap), or for good with ``permanent``."""
    u._journal(STAGE_TEST, info)
    if u.permanent:
        u.log("marking %s permanent" % info.version_str)
        slots = u.client.image_confirm(info.hash)
    else:
        u.log("marking %s for a test boot" % info.version_str)
        slots = u.client.image_test(info.hash)
    for s in slots:
        if s.hash == info.hash and s.pending:
            return
    raise _Stop(FAILED, "the neighbour did not mark the image pending")


def reset(u, info):
    """Reset the neighbour and wait until it answers again after rebooting; return its active slot."""
    u._journal(STAGE_RESET, info)
    u.log("resetting the neighbour")
    client = u.client
    try:
        client.reset()
    except (SMPTimeout, LinkError):
        pass  # it may reboot before its answer is out: the wait below tells
    t0 = ticks_ms()
    sleep_ms(_POLL_MS)
    err = None
    while True:
        left = u.reset_wait_ms - ticks_diff(ticks_ms(), t0)
        if left <= 0:
            raise _Stop(FAILED, "the neighbour did not come back within %d ms after the reset "
                        "(nothing confirmed; the next run resumes)" % u.reset_wait_ms, err, True)
        try:
            client.wait_until_ready(left, 250)
            active, other = u.slots()
        except (SMPTimeout, FrameError, ProtocolError, LinkError) as e:
            # The old firmware answered the echo just before going down
            # (Zephyr resets CONFIG_MCUMGR_GRP_OS_RESET_MS after answering).
            err = e
            continue
        # A slow reset: the old firmware may still answer for a moment.
        if not (other is not None and other.hash == info.hash and other.pending):
            return active
        sleep_ms(_POLL_MS)


def confirm(u, info, active):
    """Make the running new image permanent; only when the device says it is active."""
    if active.hash != info.hash:
        raise _Stop(REVERTED, "the neighbour reverted to %s: the bootloader did not keep %s "
                    "(bad signature, or it failed to start); nothing confirmed" % (active.version, info.version_str))
    if not active.confirmed:
        u._journal(STAGE_CONFIRM, info)
        u.log("%s is running; confirming it" % active.version)
        u.client.image_confirm()
        active, _ = u.slots()
        if active.hash != info.hash or not active.confirmed:
            raise _Stop(FAILED, "the neighbour did not confirm %s" % info.version_str)
    u.log("%s confirmed" % active.version)
    return active


def leave_unconfirmed(u, info, active, res):
    """``confirm=False``: report the test boot of the new image and stop there."""
    if active.hash != info.hash:
        raise _Stop(REVERTED, "the neighbour reverted to %s: the bootloader did not keep %s"
                    % (active.version, info.version_str))
    res.version_after = active.version
    res.outcome = UPDATED
    res.message = "the neighbour runs %s in a test boot, not confirmed: it reverts at its next reset" % (
        active.version)
    u.log(res.message)
