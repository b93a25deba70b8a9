"""Exceptions raised by smpdfu, each naming what went wrong."""

from .compat import const

# MCUmgr protocol-level return codes (mgmt_defines.h, MGMT_ERR_*).
MGMT_ERR_NAMES = (
    "EOK", "EUNKNOWN", "ENOMEM", "EINVAL", "ETIMEOUT", "ENOENT", "EBADSTATE",
    "EMSGSIZE", "ENOTSUP", "ECORRUPT", "EBUSY", "EACCESSDENIED",
    "UNSUPPORTED_TOO_OLD", "UNSUPPORTED_TOO_NEW",
)
MGMT_ERR_EOK = const(0)
MGMT_ERR_EUNKNOWN = const(1)
MGMT_ERR_ENOMEM = const(2)
MGMT_ERR_EINVAL = const(3)
MGMT_ERR_ENOENT = const(5)
MGMT_ERR_EBADSTATE = const(6)
MGMT_ERR_EMSGSIZE = const(7)
MGMT_ERR_ENOTSUP = const(8)
MGMT_ERR_ECORRUPT = const(9)
MGMT_ERR_EBUSY = const(10)

# Image group (1) return codes under SMP v2 (img_mgmt.h, IMG_MGMT_ERR_*).
IMG_ERR_NAMES = (
    "OK", "UNKNOWN", "FLASH_CONFIG_QUERY_FAIL", "NO_IMAGE", "NO_TLVS",
    "INVALID_TLV", "TLV_MULTIPLE_HASHES_FOUND", "TLV_INVALID_SIZE",
    "HASH_NOT_FOUND", "NO_FREE_SLOT", "FLASH_OPEN_FAILED", "FLASH_READ_FAILED",
    "FLASH_WRITE_FAILED", "FLASH_ERASE_FAILED", "INVALID_SLOT",
    "NO_FREE_MEMORY", "FLASH_CONTEXT_ALREADY_SET", "FLASH_CONTEXT_NOT_SET",
    "FLASH_AREA_DEVICE_NULL", "INVALID_PAGE_OFFSET", "INVALID_OFFSET",
    "INVALID_LENGTH", "INVALID_IMAGE_HEADER", "INVALID_IMAGE_HEADER_MAGIC",
    "INVALID_HASH", "INVALID_FLASH_ADDRESS", "VERSION_GET_FAILED",
    "CURRENT_VERSION_IS_NEWER", "IMAGE_ALREADY_PENDING",
    "INVALID_IMAGE_VECTOR_TABLE", "INVALID_IMAGE_TOO_LARGE",
    "INVALID_IMAGE_DATA_OVERRUN", "IMAGE_CONFIRMATION_DENIED",
    "IMAGE_SETTING_TEST_TO_ACTIVE_DENIED", "ACTIVE_SLOT_NOT_KNOWN",
)

# OS group (0) return codes under SMP v2 (os_mgmt.h, OS_MGMT_ERR_*).
OS_ERR_NAMES = (
    "OK", "UNKNOWN", "INVALID_FORMAT", "QUERY_YIELDS_NO_ANSWER",
    "RTC_NOT_SET", "RTC_COMMAND_FAILED",
)

GROUP_OS = const(0)
GROUP_IMAGE = const(1)


def _name(names, rc):
    if 0 <= rc < len(names):
        return names[rc]
    if rc >= 256:
        return "EPERUSER+%d" % (rc - 256)
    return "UNKNOWN_RC"


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


class BadImage(SMPError):
    """An MCUboot image file failed parsing or verification."""


class DeviceError(SMPError):
    """The device answered with an error; ``rc`` and ``name`` say which."""

    names = MGMT_ERR_NAMES

    def __init__(self, rc, group=None, rsn=None):
        self.rc = rc
        self.group = group
        self.name = _name(self.names, rc)
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

    names = OS_ERR_NAMES


class ImageError(GroupError):
    """An image group (1) error, named after IMG_MGMT_ERR_*."""

    names = IMG_ERR_NAMES


def error_from_response(body, group):
    """The exception a response body carries, or None when it reports success.

    Handles both forms: SMP v1 ``{"rc": n}`` and SMP v2 ``{"err": {"group", "rc"}}``.
    """
    err = body.get("err")
    if isinstance(err, dict):
        rc = err.get("rc", 0)
        if rc:
            g = err.get("group", group)
            if g == GROUP_IMAGE:
                return ImageError(rc, g)
            if g == GROUP_OS:
                return OSGroupError(rc, g)
            return GroupError(rc, g)
    rc = body.get("rc", 0)
    if rc:
        return MgmtError(rc, None, body.get("rsn"))
    return None
