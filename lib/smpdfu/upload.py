"""Image upload from a stream: a small loop feeding :class:`~smpdfu.dfu_smp.SMPTarget`.

The stream is read block by block into one buffer and written to the
target, which pipelines the chunks to the neighbour (see :mod:`smpdfu.dfu_smp`);
memory does not grow with the image. When the neighbour loses the upload
(it reset), a seekable stream is fed again from the start: the neighbour's
answer to the first chunk says what it still holds, and only the rest is sent.
"""

from .compat import const, sha256, ticks_diff, ticks_ms
from .dfu_smp import SMPTarget, UploadLost
from .dfu_target import ERASE_DONE, PROGRESS
from .errors import ProtocolError

_READ_BUF = const(1024)


class Uploader:
    """Uploads images through an :class:`~smpdfu.client.SMPClient`.

    ``chunk_buf`` (optional bytearray) is the buffer the stream is read into
    (for the SHA-256 pass too); 1 KiB is allocated when None.
    """

    def __init__(self, client, chunk_buf=None):
        self.client = client
        self._buf = chunk_buf

    def _buffer(self):
        if self._buf is None:
            self._buf = bytearray(_READ_BUF)
        return self._buf

    def file_sha(self, stream, size):
        """SHA-256 of the first ``size`` bytes of ``stream`` (one streaming pass)."""
        h = sha256()
        for piece in _blocks(stream, size, self._buffer()):
            h.update(piece)
        return h.digest()

    def upload(self, stream, size=None, image=0, sha=None, progress=None, retries=3, verify=False, started=None,
               **options):
        """Upload ``size`` bytes of ``stream`` to image ``image``; return an :class:`~smpdfu.messages.UploadResult`.

        - ``stream``: any object with ``readinto``, positioned at the image's
          start; ``size`` defaults to the file's length (the stream must seek).
        - ``sha``: the whole file's SHA-256 (or an ``mcuboot.ImageInfo``,
          whose ``file_sha`` is taken); computed in a streaming pass when
          None (the stream must then seek); ``False`` sends none (no resume).
        - ``progress(offset, total)`` is called after each confirmed chunk.
        - ``started(resumed_from, total)`` once the device answered offset 0:
          where it picks up (0: a fresh upload), said before the rest is sent.
        - ``verify``: check the MCUboot image while it streams (raises
          :class:`~smpdfu.errors.BadImage` at the end if it is not one).
        - ``retries``: consecutive failed attempts tolerated per chunk, and
          restarts when the neighbour loses the upload.
        - other options (``window``, ``first_timeout_ms``, ``timeout_ms``,
          ``upgrade``, ``buf_size``, ``buf_count``): see :class:`~smpdfu.dfu_smp.SMPTarget`.
        """
        t0 = ticks_ms()
        seekable = hasattr(stream, "seek")
        if size is None:
            if not seekable:
                raise ValueError("size is needed for a stream that cannot seek")
            size = stream.seek(0, 2)
            if size is None:  # some streams return None from seek
                size = stream.tell()
            stream.seek(0)
        if size <= 0:
            raise ValueError("nothing to upload (size %d)" % size)
        if sha is None:
            if not seekable:
                raise ValueError("pass sha= for a stream that cannot seek (it is read twice)")
            sha = self.file_sha(stream, size)
            stream.seek(0)
        elif sha is False:
            sha = None

        first = [False]

        def on_event(event, value):
            if event == ERASE_DONE:
                first[0] = True
            elif event == PROGRESS:
                if first[0] and started is not None:
                    started(t.resumed_from, size)  # set by now: the answer to offset 0 is in
                first[0] = False
                if progress is not None:
                    progress(value, size)

        # No listener, no event calls: the target calls it once per chunk.
        listen = progress is not None or started is not None
        t = SMPTarget(self.client, on_event if listen else None, verify=verify, retries=retries, **options)
        restarts = 0
        retried = 0
        t.init(size, image, sha)
        try:
            while True:
                try:
                    for piece in _blocks(stream, size, self._buffer()):
                        t.write(piece)
                    t.done(True)
                    break
                except UploadLost:
                    # The neighbour reset: feed it again; it resumes from what it holds.
                    restarts += 1
                    if not seekable or restarts > retries:
                        raise
                    retried += t.retried + 1
                    stream.seek(0)
                    t.init(size, image, sha)
        finally:
            t.done(False)  # nothing left in flight, whatever happened
        r = t.result()
        r.retries += retried
        r.elapsed_ms = ticks_diff(ticks_ms(), t0)
        return r


def _blocks(stream, size, buf):
    # The first ``size`` bytes of ``stream``, block by block, in ``buf``.
    # Whole-buffer reads slice nothing: a memoryview slice is an allocation,
    # and this loop runs once per block of the image.
    mv = memoryview(buf)
    full = len(buf)
    done = 0
    while done < size:
        want = size - done
        n = stream.readinto(buf if want >= full else mv[:want])
        if not n:
            raise ProtocolError("stream ended at %d bytes, before the %d announced" % (done, size))
        done += n
        yield buf if n == full else mv[:n]


def upload(client, stream, size=None, image=0, sha=None, progress=None, **kwargs):
    """Upload an image; see :meth:`Uploader.upload` for the options."""
    return Uploader(client).upload(stream, size, image=image, sha=sha, progress=progress, **kwargs)
