"""SMP return codes, the names of protocol numbers, and the numbers a board's update never uses.

The codes (MGMT_ERR_*, OS_ERR_*, IMG_ERR_*) and the tables naming them,
indexed by code, from Zephyr ``mgmt_defines.h``, ``os_mgmt.h`` and
``img_mgmt.h`` (checked against PyPI ``smp`` in
``host_tests/test_wire_oracles.py``). A client imports this module only when
it builds an error, so a board does not pay for the names otherwise; the
numbers a client needs on every request are in :mod:`smpdfu.proto`.
"""

from .compat import const
from .proto import GROUP_IMAGE, GROUP_OS

# The numbers only the CLI's commands (smpdfu.commands) and the servers use
# (smp.h, os_mgmt.h, img_mgmt.h): here, not in proto, so a board does not hold them.
SMP_V1 = const(0)  # the header's legacy version: errors in the rc form
OS_INFO = const(7)  # OS group command
OS_BOOTLOADER_INFO = const(8)  # OS group command
IMG_ERASE = const(5)  # image group command

# MGMT_ERR_*: protocol-level return codes (the rc form).
MGMT_ERR_EOK = const(0)
MGMT_ERR_EUNKNOWN = const(1)
MGMT_ERR_ENOMEM = const(2)
MGMT_ERR_EINVAL = const(3)
MGMT_ERR_ETIMEOUT = const(4)
MGMT_ERR_ENOENT = const(5)
MGMT_ERR_EBADSTATE = const(6)
MGMT_ERR_EMSGSIZE = const(7)
MGMT_ERR_ENOTSUP = const(8)
MGMT_ERR_ECORRUPT = const(9)
MGMT_ERR_EBUSY = const(10)
MGMT_ERR_EACCESSDENIED = const(11)
MGMT_ERR_UNSUPPORTED_TOO_OLD = const(12)
MGMT_ERR_UNSUPPORTED_TOO_NEW = const(13)
MGMT_ERR_EPERUSER = const(256)

# OS_MGMT_ERR_*: OS group return codes (v2 err form).
OS_ERR_UNKNOWN = const(1)
OS_ERR_INVALID_FORMAT = const(2)
OS_ERR_QUERY_YIELDS_NO_ANSWER = const(3)
OS_ERR_RTC_NOT_SET = const(4)

# IMG_MGMT_ERR_*: image group return codes (v2 err form).
IMG_ERR_UNKNOWN = const(1)
IMG_ERR_NO_IMAGE = const(3)
IMG_ERR_NO_TLVS = const(4)
IMG_ERR_INVALID_TLV = const(5)
IMG_ERR_TLV_MULTIPLE_HASHES_FOUND = const(6)
IMG_ERR_TLV_INVALID_SIZE = const(7)
IMG_ERR_HASH_NOT_FOUND = const(8)
IMG_ERR_NO_FREE_SLOT = const(9)
IMG_ERR_INVALID_SLOT = const(14)
IMG_ERR_NO_FREE_MEMORY = const(15)
IMG_ERR_INVALID_PAGE_OFFSET = const(19)
IMG_ERR_INVALID_OFFSET = const(20)
IMG_ERR_INVALID_LENGTH = const(21)
IMG_ERR_INVALID_IMAGE_HEADER = const(22)
IMG_ERR_INVALID_IMAGE_HEADER_MAGIC = const(23)
IMG_ERR_INVALID_HASH = const(24)
IMG_ERR_INVALID_FLASH_ADDRESS = const(25)
IMG_ERR_VERSION_GET_FAILED = const(26)
IMG_ERR_CURRENT_VERSION_IS_NEWER = const(27)
IMG_ERR_IMAGE_ALREADY_PENDING = const(28)
IMG_ERR_INVALID_IMAGE_VECTOR_TABLE = const(29)
IMG_ERR_INVALID_IMAGE_TOO_LARGE = const(30)
IMG_ERR_INVALID_IMAGE_DATA_OVERRUN = const(31)
IMG_ERR_IMAGE_CONFIRMATION_DENIED = const(32)
IMG_ERR_IMAGE_SETTING_TEST_TO_ACTIVE_DENIED = const(33)

# MGMT_ERR_* (mgmt_defines.h), by rc.
MGMT_ERR_NAMES = (
    "EOK", "EUNKNOWN", "ENOMEM", "EINVAL", "ETIMEOUT", "ENOENT", "EBADSTATE",
    "EMSGSIZE", "ENOTSUP", "ECORRUPT", "EBUSY", "EACCESSDENIED",
    "UNSUPPORTED_TOO_OLD", "UNSUPPORTED_TOO_NEW",
)

# IMG_MGMT_ERR_* (img_mgmt.h), by rc.
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

# OS_MGMT_ERR_* (os_mgmt.h), by rc.
OS_ERR_NAMES = (
    "OK", "UNKNOWN", "INVALID_FORMAT", "QUERY_YIELDS_NO_ANSWER",
    "RTC_NOT_SET", "RTC_COMMAND_FAILED",
)

# Management group ids (mgmt_defines.h MGMT_GROUP_ID_*).
GROUP_NAMES = {0: "OS", 1: "image", 2: "stat", 3: "settings", 4: "log", 8: "fs", 9: "shell", 63: "zephyr"}


def rc_name(group, rc):
    """The name of ``rc``: an MGMT_ERR_* name for the rc form (``group`` None) and
    groups without their own codes, else the OS or image group's; ``EPERUSER+n``
    for user codes, else ``UNKNOWN_RC``."""
    names = IMG_ERR_NAMES if group == GROUP_IMAGE else OS_ERR_NAMES if group == GROUP_OS else MGMT_ERR_NAMES
    if 0 <= rc < len(names):
        return names[rc]
    if rc >= 256:
        return "EPERUSER+%d" % (rc - 256)
    return "UNKNOWN_RC"


def device_error(rc, group=None, rsn=None):
    """The :class:`~smpdfu.errors.DeviceError` for ``rc`` in ``group`` (None: the
    SMP v1 ``rc`` form, with the device's reason ``rsn``); an
    :class:`~smpdfu.errors.ImageError` for the image group's."""
    from .errors import DeviceError, ImageError

    name = rc_name(group, rc)
    e = (ImageError if group == GROUP_IMAGE else DeviceError)("%s (%d)" % (name, rc) + (": " + rsn if rsn else ""))
    e.rc = rc
    e.group = group
    e.rsn = rsn
    e.name = name
    return e


def error_from_response(body, group, what="the request"):
    """The exception a response body carries, or None when it reports success.

    Handles both forms: SMP v1 ``{"rc": n}`` and SMP v2 ``{"err": {"group", "rc"}}``.
    A body that is not a map, or a malformed ``rc``/``err``/``rsn``
    (``{"rc": "x"}``), is a :class:`~smpdfu.errors.ProtocolError` naming ``what``
    (the command: text or ``(group, cmd)``), not an error code. A client calls it
    only for an answer that is not the usual success (:meth:`smpdfu.client.SMPClient.decode`).
    """
    from .errors import ProtocolError
    from .errtext import describe
    from .messages import field

    if not isinstance(body, dict):
        raise ProtocolError("answer to %s: not a CBOR map" % describe(what))
    err = body.get("err")
    if err is not None:
        if not isinstance(err, dict):
            raise ProtocolError("answer to %s: 'err' is not a map" % describe(what))
        rc = field(err, "rc", what, int, 0, None)
        if rc:
            g = field(err, "group", what, int, group, 0, 0xFFFF)
            return device_error(rc, g)
    rc = field(body, "rc", what, int, 0, None)
    if rc:
        return device_error(rc, None, field(body, "rsn", what, str, None))
    return None


def command_name(group, cmd):
    """``"group 1 (image) command 1"``: for messages."""
    g = GROUP_NAMES.get(group)
    if g:
        return "group %d (%s) command %d" % (group, g, cmd)
    return "group %d command %d" % (group, cmd)
