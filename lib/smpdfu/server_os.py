"""SMP OS management group (0) server handlers, like Zephyr's ``os_mgmt.c``.

Commands: 0 echo, 5 reset, 6 MCUmgr parameters, 7 OS/application info,
8 bootloader info. The device-specific parts come from the caller:
``version_fn()`` returns the running application's version string (what
``os info`` ``v`` reports here), ``reset_fn()`` is called after a reset
request was accepted (the transport sends the response, then resets the
device CONFIG_MCUMGR_GRP_OS_RESET_MS later).
"""

from .compat import const
from .errcodes import (MGMT_ERR_EBUSY, MGMT_ERR_EINVAL, MGMT_ERR_EMSGSIZE, MGMT_ERR_ENOENT,
                       MGMT_ERR_EUNKNOWN, OS_BOOTLOADER_INFO, OS_ERR_INVALID_FORMAT, OS_ERR_QUERY_YIELDS_NO_ANSWER,
                       OS_ERR_RTC_NOT_SET, OS_INFO)
from .proto import GROUP_OS, OS_ECHO, OS_PARAMS, OS_RESET
from .server import GroupStatus, MgmtStatus, field

# MCUboot mode in the bootloader info "mode" answer (boot_status.h).
MODE_SINGLE = const(0)
MODE_SWAP_SCRATCH = const(1)
MODE_OVERWRITE = const(2)
MODE_SWAP_MOVE = const(3)

_INFO_MAX = const(128)  # CONFIG_MCUMGR_GRP_OS_INFO_MAX_RESPONSE_SIZE
_ORDER = "snrvbmpio"  # Zephyr appends the fields in this order, whatever the request's order


class OSGroup:
    """The OS group. Keyword options describe the emulated build.

    ``kernel_release`` is Zephyr's BUILD_VERSION (``r``); ``v`` reports the
    running image version from ``version_fn`` (a real app would report the
    kernel version; here it shows which image is running). ``reset_busy``:
    refuse reset with EBUSY unless ``force`` is true (a reset hook does this).
    """

    group_id = GROUP_OS

    def __init__(self, version_fn=None, reset_fn=None, node_name="unknown",
                 kernel_release="v3.7.0", build_time="Mon Jan  6 12:00:00 2025",
                 machine="arm", processor="cortex-m4", platform="nrf52840dk",
                 bootloader_mode=MODE_SWAP_MOVE, reset_busy=False):
        self.version_fn = version_fn
        self.reset_fn = reset_fn
        self.reset_busy = reset_busy
        self.bootloader_mode = bootloader_mode
        self._fields = {
            "s": "Zephyr", "n": node_name, "r": kernel_release, "b": build_time,
            "m": machine, "p": processor, "i": platform, "o": "Zephyr",
        }
        self.handlers = {
            OS_ECHO: (self.echo, self.echo),
            OS_RESET: (None, self.reset),
            OS_PARAMS: (self.params, None),
            OS_INFO: (self.info, None),
            OS_BOOTLOADER_INFO: (self.bootloader_info, None),
        }

    def translate(self, rc):
        """os_mgmt_translate_error_code: group rc -> MGMT_ERR for v1 clients."""
        if rc == OS_ERR_INVALID_FORMAT:
            return MGMT_ERR_EINVAL
        if rc == OS_ERR_QUERY_YIELDS_NO_ANSWER or rc == OS_ERR_RTC_NOT_SET:
            return MGMT_ERR_ENOENT
        return MGMT_ERR_EUNKNOWN

    def echo(self, req):
        return {"r": field(req.body, "d", "text", "")}

    def reset(self, req):
        # Zephyr ignores decode errors here ("core command") and resets.
        force = req.body.get("force") is True
        if self.reset_busy and not force:
            raise MgmtStatus(MGMT_ERR_EBUSY)
        if self.reset_fn is not None:
            self.reset_fn()
        return {}

    def params(self, req):
        return {"buf_size": req.server.buf_size, "buf_count": req.server.buf_count}

    def info(self, req):
        fmt = field(req.body, "format", "text", "")
        want = ""
        for c in fmt:
            if c == "a":
                want = _ORDER  # 'a' replaces the bitmask, as in Zephyr
            elif c in _ORDER:
                want += c
            else:
                raise GroupStatus(GROUP_OS, OS_ERR_INVALID_FORMAT)
        if not want:
            want = "s"
        parts = []
        for c in _ORDER:
            if c in want:
                if c == "v":
                    parts.append(self.version_fn() if self.version_fn else "unknown")
                else:
                    parts.append(self._fields[c])
        out = " ".join(parts)
        if len(out) >= _INFO_MAX:
            raise MgmtStatus(MGMT_ERR_EMSGSIZE)  # snprintf would not fit the buffer
        return {"output": out}

    def bootloader_info(self, req):
        q = field(req.body, "query", "text")
        if q is None:
            return {"bootloader": "MCUboot"}
        if q == "mode":
            return {"mode": self.bootloader_mode}
        # Zephyr returns OS_MGMT_ERR_QUERY_YIELDS_NO_ANSWER as the handler's
        # rc, so it reaches the client in the rc form.
        raise MgmtStatus(OS_ERR_QUERY_YIELDS_NO_ANSWER)
