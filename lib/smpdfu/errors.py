"""Exceptions raised by smpdfu, each naming what went wrong."""

from .proto import GROUP_IMAGE, GROUP_OS


class SMPError(Exception):
    """Base class of every error smpdfu raises."""


class FrameError(SMPError):
    """A serial frame was malformed: bad CRC, bad base64 or a bad length."""


class CBORError(SMPError):
    """A CBOR item could not be decoded or encoded."""


class SMPTimeout(SMPError):
    """No response arrived in time."""


class ProtocolError(SMPError):
    """A response did not make sense for the request (wrong group, no field...)."""


class LinkError(SMPError):
    """The link failed: a BLE connection dropped, or the SMP service is missing."""


class NotFound(LinkError):
    """No device matching the name, address or service was found in time."""


class BadImage(SMPError):
    """An MCUboot image file failed parsing or verification."""


class Unvouched(BadImage):
    """Bytes the neighbour held were skipped, and it did not report ``match``
    for its slot: the image cannot be verified (feed it from 0 instead)."""


class DeviceError(SMPError):
    """The device answered with an error; ``rc`` and ``name`` say which."""

    names = "MGMT_ERR_NAMES"  # the table in smpdfu.errcodes that names rc

    def __init__(self, rc, group=None, rsn=None):
        from . import errcodes  # only now: the names cost RAM, the numbers do not

        self.rc = rc
        self.group = group
        self.name = errcodes.rc_name(getattr(errcodes, self.names), rc)
        self.rsn = rsn
        msg = "%s (%d)" % (self.name, rc)
        if rsn:
            msg += ": " + rsn
        super().__init__(msg)  # MicroPython: SMPError has no __init__ attribute


class MgmtError(DeviceError):
    """A protocol-level error: the ``rc`` form (MGMT_ERR_*)."""


class GroupError(DeviceError):
    """A group-level error: the SMP v2 ``err {group, rc}`` form."""


class OSGroupError(GroupError):
    """An OS group (0) error, named after OS_MGMT_ERR_*."""

    names = "OS_ERR_NAMES"


class ImageError(GroupError):
    """An image group (1) error, named after IMG_MGMT_ERR_*."""

    names = "IMG_ERR_NAMES"


def error_from_response(body, group, what="the request"):
    """The exception a response body carries, or None when it reports success.

    Handles both forms: SMP v1 ``{"rc": n}`` and SMP v2 ``{"err": {"group", "rc"}}``.
    A malformed ``rc``/``err``/``rsn`` (``{"rc": "x"}``) is a
    :class:`ProtocolError` naming ``what`` (the command: text or ``(group, cmd)``),
    not an error code.
    """
    err = body.get("err")
    rc = body.get("rc", 0)
    if err is None and type(rc) is int and not rc:
        return None  # the usual answer (rc 0 or none): nothing more to check
    from .messages import describe, get_int, get_str  # loaded by the client already

    if err is not None:
        if not isinstance(err, dict):
            raise ProtocolError("answer to %s: 'err' is not a map" % describe(what))
        rc = get_int(err, "rc", what, 0, None)
        if rc:
            g = get_int(err, "group", what, group, 0, 0xFFFF)
            if g == GROUP_IMAGE:
                return ImageError(rc, g)
            if g == GROUP_OS:
                return OSGroupError(rc, g)
            return GroupError(rc, g)
    rc = get_int(body, "rc", what, 0, None)
    if rc:
        return MgmtError(rc, None, get_str(body, "rsn", what, None))
    return None
