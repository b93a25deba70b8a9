"""What :class:`~smpdfu.dfu_smp.SMPTarget` and :func:`~smpdfu.upload.upload` run rarely.

Their failures (each function named after one returns the exception to
raise, its message naming what went wrong with the offsets and sizes
involved), :meth:`~smpdfu.dfu_smp.SMPTarget.schedule_update` and the SHA-256
pass over a stream given no ``sha``. Kept apart so that a board holds none of
it during a good upload: ``dfu_smp.rare`` imports this module only when it
needs it.
"""

from .compat import sha256
from .errors import BadImage, ProtocolError


class Unvouched(BadImage):
    """Bytes the neighbour held were skipped, and it did not report ``match``
    for its slot: the image cannot be verified (feed it from 0 instead).
    Defined here, where it is raised: a board holds the class only then."""


def size(n):
    return ValueError("nothing to upload (size %d)" % n)


def room(limit):
    return ProtocolError("no room for upload data in a %d-byte request" % limit)


def overrun(t, n):
    return ValueError("write of %d bytes at %d overruns the size %d" % (n, t._fed, t._size))


def ended(t):
    return ProtocolError("stream ended at %d of %d bytes" % (t._fed, t._size))


def partial(t):
    return BadImage("image incomplete: %d of %d bytes written, %d held" % (t._fed, t._size, t.held))


def mismatch(here):
    # here: the bytes seen here are not the file sha names; else the neighbour's slot is not
    if here:
        return BadImage("hash mismatch: the file is not the sha given")
    return ProtocolError("hash mismatch: the neighbour's slot is not the sha given")


def unvouched(t):
    return Unvouched("%d bytes not seen here and the neighbour did not report 'match' (CONFIG_IMG_ENABLE_IMAGE_CHECK): "
                     "feed the image from 0 to verify it here" % t.skipped)


def schedule_update(t, permanent):
    # SMPTarget.schedule_update
    info = t.info
    if info is None:
        raise BadImage("no verified image to schedule: done(True) did not succeed")
    h = info.hash
    slots = t.client.image_confirm(h) if permanent else t.client.image_test(h)
    for s in slots:
        if s.hash == h and s.pending:
            return slots
    raise ProtocolError("the neighbour did not mark image %s pending" % info.hash_hex())


def unsized():
    return ValueError("size is needed for a stream that cannot seek")


def unhashed():
    return ValueError("pass sha= for a stream that cannot seek (it is read twice)")


def attempts(t, err):
    # The consecutive failures of one request exceeded ``retries``: ``err`` the
    # last one's exception, None when the server kept asking for an offset it had.
    msg = "upload failed at offset %d of %d after %d attempts: %s" % (
        t.held, t._size, -t._streak, err or "the server keeps asking for the same offset")
    ms, erase = t._up[:2]
    if erase and t.resumed_from is None:
        msg += " (each waited %d ms: the device erases %d bytes of flash first)" % (ms, erase)
    return (ProtocolError if err is None else type(err))(msg)


def lost(t, off):
    from .dfu_smp import UploadLost

    e = UploadLost("the neighbour lost the upload: it asks for offset %d, this target holds from %d (did it reset?)"
                   % (off, t.held))
    e.offset = off
    return e


def stream_sha(stream, size, buf=None):
    """SHA-256 of the first ``size`` bytes of ``stream``, read into ``buf`` (1 KiB allocated when None)."""
    buf = buf or bytearray(1024)
    mv = memoryview(buf)
    h = sha256()
    while size > 0:
        n = stream.readinto(mv[:size] if size < len(buf) else buf)
        if not n:
            break  # short: the upload that follows says where it ended
        h.update(buf if n == len(buf) else mv[:n])
        size -= n
    return h.digest()
