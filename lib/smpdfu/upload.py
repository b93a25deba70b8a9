"""Image upload (image group, command 1) in bounded memory.

Each chunk is read from the stream straight into the transport's packet
buffer, after a CBOR head written in place, so the memory used does not grow
with the image: no buffer is allocated per chunk and nothing holds the image.

The server drives the offsets: every answer carries the offset it expects
next. Re-sending offset 0 with the same ``sha`` makes a Zephyr server answer
where an interrupted upload stopped (resume); a chunk at the wrong offset is
dropped by the server, which answers the expected offset. Chunks are therefore
idempotent, which makes retrying and pipelining safe.
"""

from .compat import const, sha256, ticks_diff, ticks_ms
from .errors import DeviceError, FrameError, ProtocolError, SMPTimeout
from .proto import GROUP_IMAGE, OP_WRITE
from .messages import DEFAULT_BUF_SIZE, UploadResult

_IMG_UPLOAD = const(1)
_MAJ_BYTES = const(2)
_FRAME_OVERHEAD = const(4)  # the serial frame's length and CRC share the server's buffer
_DEFAULT_WINDOW = const(3)  # requests in flight when the server has spare buffers
_REGROW_AFTER = const(8)  # clean answers in a row before the window grows again after a loss
_FIRST_TIMEOUT_MS = const(30000)  # the first chunk waits for a whole-slot erase
_FIRST_TIMEOUT_PER_4K_MS = const(100)  # ... which grows with the slot (~85 ms per 4 KiB page on nRF52)

# CBOR map keys, as UTF-8 bytes so that encoding them allocates nothing.
_K_OFF = b"off"
_K_DATA = b"data"
_K_LEN = b"len"
_K_IMAGE = b"image"
_K_SHA = b"sha"
_K_UPGRADE = b"upgrade"


def _head_size(n):
    # Bytes of a CBOR head whose argument is n.
    if n < 24:
        return 1
    if n < 0x100:
        return 2
    if n < 0x10000:
        return 3
    if n < 0x100000000:
        return 5
    return 9


class _Lost(Exception):
    # A later request was answered before the one awaited: the server answers
    # in order, so the awaited request (or its answer) was lost on the link.
    pass


class Uploader:
    """Uploads images through an :class:`~smpdfu.client.SMPClient`.

    ``chunk_buf`` (optional bytearray) is the scratch buffer for the SHA-256
    pass and for skipping forward in unseekable streams; by default the
    transport's packet buffer, which is free at those times, is used.
    """

    def __init__(self, client, chunk_buf=None):
        self.client = client
        self._scratch = memoryview(chunk_buf) if chunk_buf is not None else client.transport.packet
        self._stream = None
        self._pos = 0

    # ------------------------------------------------------------ stream

    def _seek(self, off):
        # Position the stream at image offset ``off``.
        if off == self._pos:
            return
        s = self._stream
        if hasattr(s, "seek"):
            s.seek(off)
            self._pos = off
            return
        if off < self._pos:
            raise ProtocolError("device asked for offset %d but the stream cannot seek back from %d" % (off, self._pos))
        buf = self._scratch
        while self._pos < off:
            want = min(len(buf), off - self._pos)
            n = s.readinto(buf[:want])
            if not n:
                raise ProtocolError("stream ended at %d while skipping to %d" % (self._pos, off))
            self._pos += n

    def _read_into(self, mv, a, b):
        # Fill mv[a:b] from the stream (readinto may return short counts).
        s = self._stream
        while a < b:
            n = s.readinto(mv[a:b])
            if not n:
                raise ProtocolError("stream ended at %d bytes, before the %d announced" % (self._pos, self._size))
            a += n
            self._pos += n

    def file_sha(self, stream, size):
        """SHA-256 of the first ``size`` bytes of ``stream`` (one streaming pass)."""
        h = sha256()
        buf = self._scratch
        full = len(buf)
        done = 0
        while done < size:
            want = size - done
            # Whole-buffer reads slice nothing: a memoryview slice is an
            # allocation, and this loop runs once per block of the image.
            n = stream.readinto(buf if want >= full else buf[:want])
            if not n:
                raise ProtocolError("stream ended at %d bytes, before the %d announced" % (done, size))
            h.update(buf if n == full else buf[:n])
            done += n
        return h.digest()

    # ------------------------------------------------------------ chunks

    def _send_chunk(self, off, first):
        """Build and send the chunk at ``off``; return (seq, end offset)."""
        self._seek(off)
        size = self._size
        client = self.client
        enc = client.encoder()
        fixed = enc.pos + 1 + 4 + _head_size(off) + 5  # map head, "off": off, "data" key
        npairs = 2
        if first:
            sha = self._sha
            npairs = 4
            fixed += 4 + _head_size(size) + 6 + _head_size(self._image)
            if sha:
                npairs += 1
                fixed += 4 + _head_size(len(sha)) + len(sha)
            if self._upgrade:
                npairs += 1
                fixed += 9
        avail = self._limit - fixed
        n = avail - 1
        while n > 0 and n + _head_size(n) > avail:
            n -= 1
        if n <= 0:
            raise ProtocolError("server buffer of %d bytes is too small for an upload request" % self._limit)
        if n > size - off:
            n = size - off
        enc.map(npairs)
        enc.text(_K_OFF)
        enc.int(off)
        if first:
            enc.text(_K_LEN)
            enc.int(size)
            enc.text(_K_IMAGE)
            enc.int(self._image)
            if sha:
                enc.text(_K_SHA)
                enc.bytes(sha)
            if self._upgrade:
                enc.text(_K_UPGRADE)
                enc.bool(True)
        enc.text(_K_DATA)
        enc.head(_MAJ_BYTES, n)
        p = enc.pos
        self._read_into(enc.buf, p, p + n)
        enc.pos = p + n
        self.chunk_size = max(self.chunk_size, n)
        self.chunks += 1
        return client.send_encoded(OP_WRITE, GROUP_IMAGE, _IMG_UPLOAD), off + n

    def _wait(self, seq, later, timeout_ms):
        """Wait for ``seq``; raise :class:`_Lost` if one of ``later`` is answered first."""
        client = self.client
        t0 = ticks_ms()
        while not client.answered(seq):
            got = client.poll()
            if got is None:
                left = timeout_ms - ticks_diff(ticks_ms(), t0)
                if left <= 0:
                    client.cancel(seq)
                    raise SMPTimeout("no response to image upload within %d ms" % timeout_ms)
                client.transport.wait(left if left < 50 else 50)
            elif got != seq and got in later:
                raise _Lost()
        return client.wait(seq)

    def _offset(self, rsp):
        off = rsp.get("off")
        if not isinstance(off, int) or off < 0 or off > self._size:
            raise ProtocolError("upload response has a bad offset %r (image is %d bytes)" % (off, self._size))
        if off == self._size:
            m = rsp.get("match")
            if m is not None:
                self.match = bool(m)
                if not m:
                    raise ProtocolError("image hash mismatch after upload")
        return off

    def _start(self, timeout_ms, retries):
        """Send offset 0 (with len and sha) alone; return (server's off, our end, failed attempts).

        It goes alone because its answer may be a resume offset, and because
        the device erases the slot before answering.
        """
        failures = 0
        while True:
            try:
                seq, end = self._send_chunk(0, True)
                return self._offset(self.client.wait(seq, timeout_ms)), end, failures
            except (SMPTimeout, FrameError) as e:
                failures += 1
                if failures > retries:
                    raise type(e)("upload failed at offset 0 after %d attempts: %s" % (failures, e))

    # ------------------------------------------------------------ upload

    def upload(self, stream, size=None, image=0, sha=None, progress=None, window=None,
               first_timeout_ms=None, timeout_ms=None, upgrade=False, retries=3,
               buf_size=None, buf_count=None):
        """Upload ``size`` bytes of ``stream`` to image ``image``; return an :class:`~smpdfu.messages.UploadResult`.

        - ``stream``: any object with ``readinto``, positioned at the image's
          start; with ``seek`` (files) it can follow the server anywhere,
          without it only forward. ``size`` defaults to the file's length.
        - ``sha``: the whole file's SHA-256 (or an ``mcuboot.ImageInfo``,
          whose ``file_sha`` is taken); computed in a streaming pass when
          None (the stream must then seek); ``False`` sends none (no resume).
        - ``progress(offset, total)`` is called after each confirmed chunk.
        - ``window``: requests in flight (default: up to 3, at most the
          server's ``buf_count - 1``); a lost or broken response drops it to
          1, and it grows back by one after every 8 clean answers in a row
          (a single dropped line should not slow the whole upload down).
        - ``first_timeout_ms``: for the first chunk, which waits for the slot
          erase (default 30 s + 100 ms per 4 KiB); ``timeout_ms`` for the
          others (default: the client's).
        - ``retries``: consecutive failed attempts tolerated per chunk.
        - ``buf_size``/``buf_count``: the server's buffers when known;
          otherwise asked with ``params()`` (384 / one in flight if it cannot say).
        """
        client = self.client
        t_start = ticks_ms()
        if size is None:
            if not hasattr(stream, "seek"):
                raise ValueError("size is needed for a stream that cannot seek")
            size = stream.seek(0, 2)
            if size is None:  # some streams return None from seek
                size = stream.tell()
            stream.seek(0)
        if size <= 0:
            raise ValueError("nothing to upload (size %d)" % size)
        if sha is None:
            if not hasattr(stream, "seek"):
                raise ValueError("pass sha= for a stream that cannot seek (it is read twice)")
            sha = self.file_sha(stream, size)
            stream.seek(0)
        elif sha is not False and hasattr(sha, "file_sha"):
            sha = sha.file_sha
        if buf_size is None:
            try:
                p = client.params()
                buf_size = p.buf_size
                if buf_count is None:
                    buf_count = p.buf_count
            except (DeviceError, SMPTimeout, ProtocolError, FrameError):
                buf_size = DEFAULT_BUF_SIZE  # an old server: no params command
        if window is None:
            window = _DEFAULT_WINDOW
            if buf_count is None or buf_count - 1 < window:
                window = buf_count - 1 if buf_count else 1
        if window < 1:
            window = 1
        if first_timeout_ms is None:
            first_timeout_ms = _FIRST_TIMEOUT_MS + (size >> 12) * _FIRST_TIMEOUT_PER_4K_MS
        if timeout_ms is None:
            timeout_ms = client.timeout_ms

        self._stream = stream
        self._pos = 0
        self._size = size
        self._sha = sha or None
        self._image = image
        self._upgrade = upgrade
        self._limit = min(buf_size - _FRAME_OVERHEAD, client.transport.max_packet)
        self.chunk_size = 0
        self.chunks = 0
        self.match = None
        failures = 0
        total_retries = 0
        ring = window  # ring of requests in flight: seq and end offset
        seqs = [0] * ring
        ends = [0] * ring
        head = 0
        count = 0
        clean = 0  # answers in a row as expected, since the last loss
        try:
            acked, first_end, failures = self._start(first_timeout_ms, retries)
            total_retries += failures
            resumed_from = acked if acked != first_end else 0
            failures = 0
            restarts = 0
            if progress:
                progress(acked, size)
            next_off = acked
            while acked < size:
                while count < window and next_off < size:
                    seq, end = self._send_chunk(next_off, False)
                    i = (head + count) % ring
                    seqs[i] = seq
                    ends[i] = end
                    count += 1
                    next_off = end
                seq = seqs[head]
                try:
                    off = self._offset(self._wait(seq, seqs if count > 1 else (), timeout_ms))
                except (SMPTimeout, FrameError, _Lost) as e:
                    # Lost or broken: forget what is in flight and go on one
                    # request at a time from the last confirmed offset.
                    for k in range(count):
                        client.cancel(seqs[(head + k) % ring])
                    head = count = clean = 0
                    window = 1
                    next_off = acked
                    failures += 1
                    total_retries += 1
                    if failures > retries:
                        if isinstance(e, _Lost):
                            e = SMPTimeout("requests lost")
                        raise type(e)("upload failed at offset %d of %d after %d attempts: %s" % (acked, size, failures, e))
                    continue
                end = ends[head]
                head = (head + 1) % ring
                count -= 1
                if off != end:
                    # The server wants another offset and drops what is still
                    # in flight; it answers in order, so its last answer says
                    # where it stands.
                    while count:
                        try:
                            off = self._offset(self._wait(seqs[head], (), timeout_ms))
                        except (SMPTimeout, FrameError):
                            for k in range(count):
                                client.cancel(seqs[(head + k) % ring])
                            count = 0
                            break
                        head = (head + 1) % ring
                        count -= 1
                    head = clean = 0
                    window = 1
                    next_off = off
                    if off == 0 and acked > 0:
                        # The device lost the upload (it reset: the state is in
                        # its RAM). Start again, with len and sha at offset 0.
                        restarts += 1
                        if restarts > retries:
                            raise ProtocolError("upload restarted %d times: the device keeps losing it (reset?)" % restarts)
                        off, _end, n = self._start(first_timeout_ms, retries)
                        total_retries += 1 + n
                        next_off = off
                    elif off <= acked:
                        failures += 1
                        total_retries += 1
                        if failures > retries:
                            raise ProtocolError("upload stuck: the server keeps answering offset %d of %d" % (off, size))
                else:
                    failures = 0
                    clean += 1
                    if window < ring and clean >= _REGROW_AFTER:
                        window += 1
                        clean = 0
                acked = off
                if progress:
                    progress(acked, size)
        finally:
            for k in range(count):
                client.cancel(seqs[(head + k) % ring])
            self._stream = None
        return UploadResult(size, self._sha, self.match, ticks_diff(ticks_ms(), t_start), self.chunks,
                            total_retries, resumed_from, window, self.chunk_size)


def upload(client, stream, size=None, image=0, sha=None, progress=None, **kwargs):
    """Upload an image; see :meth:`Uploader.upload` for the options."""
    return Uploader(client).upload(stream, size, image=image, sha=sha, progress=progress, **kwargs)
