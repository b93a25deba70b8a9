"""The update's steps before the upload: find the neighbour, compare, decide what is left.

Split from :mod:`smpdfu.updater` so that their code is not in RAM while the
upload runs (the upload is where a board's heap peaks): :meth:`Updater.run
<smpdfu.updater.Updater.run>` imports this module at its start and unloads
it before the upload. Each step takes the
:class:`~smpdfu.updater.Updater` as ``u``.
"""

from binascii import hexlify

from .errors import SMPTimeout
from .updater import (FAILED, REVERTED, STAGE_CONFIRM, STAGE_DONE, STAGE_RESET, STAGE_TEST, STAGE_UPLOAD,
                      UP_TO_DATE, UPDATED, _Stop)


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


def _previous_stage(u, info):
    # The journal's stage for this very image, or None.
    p = u.previous
    if p and p[1] == info.hash_hex():
        return p[0]
    return None


def plan(u, info, active, other):
    """The first step still needed for ``info``, from the device's slots.

    Returns ``"up-to-date"``, ``"reverted"`` or the stage to start from
    (``"upload"``, ``"test"``, ``"reset"``, ``"confirm"``); stops the run on a
    state it must not touch.
    """
    ours = info.hash
    if active.hash == ours:
        return UP_TO_DATE if active.confirmed else STAGE_CONFIRM
    if not active.confirmed:
        # A test boot of some other image is in progress: confirming or
        # resetting it is its owner's decision, not ours.
        raise _Stop(FAILED, "the neighbour runs an unconfirmed image %s (%s) that is not this one; "
                    "confirm or revert it first" % (active.version, hexlify(active.hash or b"")[:16].decode()))
    running = parse_version(active.version)
    if running is not None and running == tuple(info.version):
        return UP_TO_DATE
    if other is not None and other.hash == ours:
        if other.pending:
            return STAGE_RESET
        if _previous_stage(u, info) in (STAGE_RESET, STAGE_CONFIRM):
            return REVERTED
        return STAGE_TEST
    if other is not None and other.pending:
        raise _Stop(FAILED, "slot %d holds another pending image %s; reset the neighbour (to boot it) "
                    "or cancel it first" % (other.slot, other.version))
    if running is not None and running > tuple(info.version) and not u.allow_downgrade:
        raise _Stop(FAILED, "the neighbour runs %s, newer than the image's %s: not downgrading "
                    "(set allow_downgrade)" % (active.version, info.version_str))
    return STAGE_UPLOAD


def start(u, info, res):
    """Wait for the neighbour, read its slots and plan: ``(stage, active slot)``.

    The stage is the first step still to do (``"upload"``, ``"test"``,
    ``"reset"``, ``"confirm"``), or None when the run is over (up to date,
    said in ``res``).
    """
    try:
        u.client.wait_until_ready(u.connect_ms)
    except SMPTimeout as e:
        raise _Stop(FAILED, "no answer from the neighbour within %d ms: check the wiring (TX->RX, RX->TX, "
                    "GND), the baud rate, and that it runs MCUmgr over UART" % u.connect_ms, e, True)
    active, other = u.slots()
    res.version_before = res.version_after = active.version
    u.log("neighbour runs %s%s; image is %s" % (
        active.version, "" if active.confirmed else " (unconfirmed)", info.version_str))
    step = plan(u, info, active, other)
    if step == UP_TO_DATE:
        res.outcome = UP_TO_DATE
        res.message = "the neighbour already runs %s: nothing sent" % active.version
        if _previous_stage(u, info) in (STAGE_RESET, STAGE_CONFIRM):
            res.outcome = UPDATED  # finished by an earlier run, cut short before recording
            res.message = "the neighbour runs %s, confirmed" % active.version
        u._journal(STAGE_DONE, info)
        u.log(res.message)
        return None, active
    if step == REVERTED:
        raise _Stop(REVERTED, "the neighbour reverted to %s after a test boot of %s; nothing confirmed"
                    % (active.version, info.version_str))
    if step != STAGE_UPLOAD:
        res.resumed = True
        u.log("resuming: the image is already on the neighbour, nothing sent (next step: %s)" % step)
    return step, active
