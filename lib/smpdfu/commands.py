"""SMP commands a board's update never sends (the CLI's): OS info, bootloader info, erase.

Functions taking an :class:`~smpdfu.client.SMPClient`, apart from it so that
a board running the update holds neither their code nor their names.
"""

from .errcodes import IMG_ERASE, OS_BOOTLOADER_INFO, OS_INFO
from .messages import field
from .proto import GROUP_IMAGE, GROUP_OS, OP_READ, OP_WRITE


def os_info(client, fmt="a"):
    """``uname``-like info; ``fmt`` letters from ``snrvbmpioa`` (``a`` = all)."""
    rsp = client.request(OP_READ, GROUP_OS, OS_INFO, {"format": fmt})
    return field(rsp, "output", "os info", str)


def bootloader_info(client, query=None):
    """Bootloader info: ``{"bootloader": "MCUboot"}``, or ``{"mode": n}`` for query ``"mode"``."""
    body = {"query": query} if query is not None else None
    rsp = client.request(OP_READ, GROUP_OS, OS_BOOTLOADER_INFO, body)
    w = "bootloader info"
    # Checked here so that callers can use the known fields as they are.
    field(rsp, "bootloader", w, str, None)
    field(rsp, "mode", w, int, None, -1, 0xFF)
    field(rsp, "no-downgrade", w, bool, None)
    return rsp


def image_erase(client, slot=None, timeout_ms=None):
    """Erase a slot (default: the server's choice, slot 1)."""
    body = {"slot": slot} if slot is not None else None
    if timeout_ms is None:
        timeout_ms = max(client.timeout_ms, 30000)  # a whole-slot erase takes seconds
    client.request(OP_WRITE, GROUP_IMAGE, IMG_ERASE, body, timeout_ms)
