"""dfu_target: one push-style interface for every place an image can go.

The shape of nRF Connect SDK's dfu_target: a source (a file loop, an HTTP
download, a bridge) feeds bytes as they arrive; the target stores them,
checks the MCUboot image while it streams and can mark it for the next boot::

    from smpdfu.dfu_target import image_type
    from smpdfu.dfu_smp import SMPTarget      # or dfu_file.FileTarget
    t = SMPTarget(client)
    t.init(size, image=0, sha=file_sha)        # sha: SHA-256 of the whole file (resume)
    off = t.offset()                           # where the next write goes: feed from there
    t.write(buf)                               # any length, any split; buf is not kept
    info = t.done(True)                        # finish + verify -> mcuboot.ImageInfo
    t.schedule_update(permanent=False)         # mark for a test boot
    t.reset()

``offset()`` is where the next write goes. A FileTarget knows it at once
(its saved progress). An SMPTarget with ``sha`` learns where the neighbour
stands only from the answer to its first request, which carries the image
header: a source that can skip (an HTTP download) writes the first bytes,
asks ``offset()`` again and continues from what it returns; a source that
cannot just keeps writing from 0 (bytes already held are checked, not sent
again). What is verified when bytes were skipped: see ``dfu_smp``.

Events go to one optional ``callback(event, value)``: :data:`ERASE_PENDING`
(value None), :data:`ERASE_DONE`, :data:`PROGRESS` (bytes the target holds),
:data:`DONE` (the ImageInfo), :data:`ERROR` (the exception). Backends live in
their own modules (``dfu_smp``, ``dfu_file``) so a path imports only what it
uses.
"""

ERASE_PENDING = "erase_pending"
ERASE_DONE = "erase_done"
PROGRESS = "progress"
DONE = "done"
ERROR = "error"


def image_type(first_bytes):
    """``"mcuboot"`` when ``first_bytes`` start an MCUboot image, else None.

    Like ``dfu_target_img_type``: only the image magic is looked at (4 bytes
    are enough); the image is checked while it streams.
    """
    from .mcuboot import IMAGE_MAGIC  # every backend loads it anyway

    if len(first_bytes) >= 4 and bytes(first_bytes[:4]) == IMAGE_MAGIC:
        return "mcuboot"
    return None


def file_sha(sha):
    """The 32-byte whole-file SHA-256 from ``sha``: bytes, hex text, an ImageInfo or None."""
    if sha is None:
        return None
    sha = getattr(sha, "file_sha", sha)
    if isinstance(sha, str):
        from binascii import unhexlify

        sha = unhexlify(sha)
    sha = bytes(sha)
    if len(sha) != 32:
        raise ValueError("sha: %d bytes, not 32" % len(sha))
    return sha


class Target:
    """What every backend shares: the event callback and ``info``.

    Subclasses set ``callback`` (``callback(event, value)`` or None) and
    implement ``init``, ``offset``, ``write``, ``done``, ``schedule_update``
    and ``reset`` (see the module doc); a failing ``done(True)`` sends
    :data:`ERROR` before it raises.
    """

    callback = None
    info = None  # the ImageInfo once done(True) verified the image

    def _event(self, event, value=None):
        cb = self.callback
        if cb is not None:
            cb(event, value)
