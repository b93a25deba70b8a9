"""Image upload from a stream: a small loop around :class:`~smpdfu.dfu_smp.SMPTarget`.

The stream is read straight into the target's resend ring (a stream given to
:meth:`~smpdfu.dfu_smp.SMPTarget.write`: no buffer of its own), which
pipelines the chunks to the neighbour; memory does not grow with the image.
When the neighbour loses the upload (it reset), a seekable stream is fed
again from the start: the neighbour's answer to the first chunk says what it
still holds, and only the rest is sent.
"""

from .compat import ticks_diff, ticks_ms
from .dfu_smp import SMPTarget, UploadLost, rare
from .dfu_target import ERASE_DONE, PROGRESS


def upload(client, stream, size=None, image=0, sha=None, progress=None, retries=3, verify=False, started=None,
           **options):
    """Upload ``size`` bytes of ``stream`` to image ``image``; return an :class:`~smpdfu.messages.UploadResult`.

    - ``stream``: any object with ``readinto``, positioned at the image's
      start; ``size`` defaults to the file's length (the stream must seek).
    - ``sha``: the whole file's SHA-256 (or an ``mcuboot.ImageInfo``,
      whose ``file_sha`` is taken); computed in a streaming pass when
      None (:func:`smpdfu.dfu_smp_rare.stream_sha`; the stream must then
      seek); ``False`` sends none (no resume).
    - ``progress(offset, total)`` is called after each confirmed chunk.
    - ``started(resumed_from, total)`` once the device answered offset 0:
      where it picks up (0: a fresh upload), said before the rest is sent.
    - ``verify``: check the MCUboot image while it streams (raises
      :class:`~smpdfu.errors.BadImage` at the end if it is not one).
    - ``retries``: consecutive failed attempts tolerated per chunk, and
      restarts when the neighbour loses the upload.
    - other options (``window``, ``ring``, ``first_timeout_ms``,
      ``timeout_ms``, ``upgrade``, ``buf_size``, ``buf_count``): see
      :class:`~smpdfu.dfu_smp.SMPTarget`; ``window`` and ``ring`` size the
      upload's only buffer.
    """
    t0 = ticks_ms()
    seekable = hasattr(stream, "seek")
    if size is None:
        if not seekable:
            raise rare("unsized")
        size = stream.seek(0, 2)
        if size is None:  # some streams return None from seek
            size = stream.tell()
        stream.seek(0)
    if sha is None:
        if not seekable:
            raise rare("unhashed")
        sha = rare("stream_sha", stream, size)
        stream.seek(0)
    elif sha is False:
        sha = None

    def on_event(event, value):
        if event == PROGRESS:
            if progress is not None:
                progress(value, size)
        elif event == ERASE_DONE and started is not None:
            started(t.resumed_from, size)  # the answer to offset 0 is in

    # No listener, no event calls: the target calls it once per chunk.
    t = SMPTarget(client, None if progress is None and started is None else on_event, verify=verify,
                  retries=retries, **options)
    restarts = retried = 0
    t.init(size, image, sha)
    try:
        while True:
            try:
                t.write(stream)  # read straight into the target's ring
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

