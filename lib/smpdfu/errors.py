"""Exceptions raised by smpdfu, each naming what went wrong.

Every class costs heap on a board, so there are few: a device's error is a
:class:`DeviceError` whose ``group`` says which form and group it came in
(:class:`ImageError` for the image group's, the one callers tell apart).
A rare error defined where it is raised is a subclass of one of these
(:class:`smpdfu.dfu_smp_rare.Unvouched`, a :class:`BadImage`).
"""

class SMPError(Exception):
    """Base class of every error smpdfu raises."""


class FrameError(SMPError):
    """A serial frame was malformed: bad CRC, bad base64 or a bad length."""


class SMPTimeout(SMPError):
    """No response arrived in time."""


class ProtocolError(SMPError):
    """A response did not make sense for the request (wrong group, no field, bad CBOR...)."""


# A CBOR item that could not be decoded (a broken answer) or encoded (too big
# for the packet buffer): a protocol error, the message says which.
CBORError = ProtocolError


class LinkError(SMPError):
    """The link failed: a BLE connection dropped, or the SMP service is missing
    (:class:`smpdfu.ble.NotFound`: no device matched)."""


class BadImage(SMPError):
    """An MCUboot image file failed parsing or verification."""


class DeviceError(SMPError):
    """The device answered with an error: ``rc`` and its ``name``; ``group`` is
    None for the SMP v1 ``rc`` form (MGMT_ERR_*, with the device's reason
    ``rsn``), else the group of the v2 ``err`` form (0: OS_MGMT_ERR_*...).
    Built by :func:`smpdfu.errcodes.device_error`, where the names are: they
    cost RAM, the numbers do not (:func:`smpdfu.errcodes.error_from_response`
    finds the error an answer carries)."""


# A protocol-level error, the ``rc`` form (MGMT_ERR_*): a DeviceError whose
# ``group`` is None (no class of its own: nothing tells it apart by type).
MgmtError = DeviceError


class ImageError(DeviceError):
    """An image group (1) error, named after IMG_MGMT_ERR_*."""

