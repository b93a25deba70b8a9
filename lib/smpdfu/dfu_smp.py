"""dfu_target backend: the neighbour's slot, through SMP image upload.

Bytes given to :meth:`SMPTarget.write` are copied into one preallocated ring
(a window's worth of chunks) and sent from there as image upload requests,
each built in place in the transport's packet buffer: no buffer is allocated
per write or per chunk, and nothing grows with the image. The ring is what a
lost request is resent from.

The server drives the offsets: every answer carries the offset it expects
next; a chunk at the wrong offset is dropped by the server, which answers the
expected one. Chunks are idempotent, which makes retrying and pipelining
safe. Up to ``window`` requests are in flight (at most the server's
``buf_count - 1``); a loss drops the window to 1 and it grows back by one
after 8 clean answers in a row.

Resume: Zephyr answers a resume query only in the first request of an upload,
and that request must carry the image header: ``img_mgmt_upload_inspect``
(zephyr_img_mgmt.c) returns INVALID_IMAGE_HEADER for fewer than 32 data bytes
at ``off`` 0 and checks the header magic before it compares ``sha`` with the
upload in progress. So a new target starts at offset 0 whatever the neighbour
holds; its first request goes out with ``len`` and ``sha``, and the answer
says where the neighbour stands (it keeps an interrupted upload in RAM until
it resets). Then either:

- the caller goes on feeding from 0 (a file loop, a bridge): the bytes the
  neighbour already holds are checked, not sent again, and everything is
  verified as for a fresh upload; or
- the caller asks :meth:`SMPTarget.offset` after writing the first bytes (at
  least the 32-byte MCUboot header, with ``sha``): it waits for that answer
  and returns where the neighbour stands, and the next write goes there. The
  bytes in between are never seen by this board (a download asks the server
  only for the rest). What is verified then: the header and the TLV walk on
  the bytes seen (the skip stops at the end of the body, so the TLV area is
  always seen), and the whole file through the neighbour: Zephyr's last
  upload answer carries ``match`` (CONFIG_IMG_ENABLE_IMAGE_CHECK:
  ``flash_img_check`` of the slot against ``sha``), which must be True. A
  neighbour that does not report ``match`` cannot vouch for the part this
  board did not see: ``done(True)`` refuses the image
  (:class:`~smpdfu.errors.Unvouched`, a BadImage) and nothing is marked for
  test; feeding the image again from 0 then verifies it here.
"""

from .compat import const, ticks_diff, ticks_ms
from .dfu_target import DONE, ERASE_DONE, ERASE_PENDING, PROGRESS, Target, file_sha
from .errors import BadImage, FrameError, ProtocolError, SMPError, SMPTimeout, Unvouched
from .header import HEADER_SIZE
from .mcuboot import IMAGE_HEADER_SIZE, ImageVerifier, hexstr
from .messages import DEFAULT_BUF_SIZE, UploadResult, upload_offset
from .proto import GROUP_IMAGE, IMG_UPLOAD, OP_WRITE

_MAJ_UINT = const(0)
_MAJ_BYTES = const(2)
_DEFAULT_WINDOW = const(3)  # requests in flight when the server has spare buffers
_REGROW_AFTER = const(8)  # clean answers in a row before the window grows again after a loss
# The first chunk waits for the device to erase what the image needs (Zephyr's
# img_mgmt_erase_image_data(0, len), unless progressive erase is configured):
# ~85 ms per 4 KiB page on nRF52840, plus the trailer's page at the slot's end.
_ERASE_PER_4K_MS = const(100)
_TRAILER_PAGES = const(1)

# CBOR map keys, as UTF-8 bytes so that encoding them allocates nothing.
_K_OFF = b"off"
# What every request but the first starts with, and the data key, encoded once:
# {2 pairs, "off": ...} and "data".
_OPEN_2_OFF = b"\xa2\x63off"
_DATA_KEY = b"\x64data"
_K_LEN = b"len"
# The usual upload answer's pieces (see SMPTarget._answer): "rc": 0 and the "off" key.
_RC_0 = b"\x62rc\x00"
_K_OFF_T = b"\x63off"
_HDR = const(8)  # HEADER_SIZE (const() takes a literal)
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
    if n >> 32 == 0:  # no long-int literal (CircuitPython builds without them)
        return 5
    return 9


class UploadLost(ProtocolError):
    """The neighbour lost the upload (it reset) and wants bytes already gone by.

    ``offset`` is where it stands. Feed the image again from 0 after a new
    :meth:`SMPTarget.init`: the first request (with ``sha``) lets it resume
    from whatever it still holds.
    """

    def __init__(self, message, offset):
        super().__init__(message)
        self.offset = offset


class _Lost(Exception):
    # A later request was answered before the one awaited: the server answers
    # in order, so the awaited request (or its answer) was lost on the link.
    pass


def erase_wait(client, size, image=0):
    """``(ms, erase_bytes)``: how long the first chunk's answer may take, and why.

    The device erases the flash the image needs (its pages and the trailer's)
    before it answers offset 0: the wait is the client's timeout plus that
    erase, never more than the whole slot (its size from slot info, when the
    device can say). A server that erases its whole slot may take longer: the
    first chunk is then sent again, and its answer says where to go on.
    """
    pages = ((size + 4095) >> 12) + _TRAILER_PAGES
    try:
        for im in client.slot_info():
            if im["image"] == image:
                for s in im["slots"]:
                    slot_pages = (s["size"] + 4095) >> 12
                    if 0 < slot_pages < pages:
                        pages = slot_pages
    except SMPError:
        pass  # an older server: no slot info command
    return client.timeout_ms + pages * _ERASE_PER_4K_MS, pages << 12


class SMPTarget(Target):
    """The neighbour's secondary slot over an :class:`~smpdfu.client.SMPClient`.

    - ``verify``: check the MCUboot image while it streams (default); False
      sends any bytes (``done`` then returns None);
    - ``window``: requests in flight (default: up to 3, at most the server's
      ``buf_count - 1``);
    - ``first_timeout_ms``: for the first chunk, which waits for the slot
      erase (default: :func:`erase_wait`, from the image and the device's
      slot); ``timeout_ms`` for the others (default: the client's);
    - ``retries``: consecutive failed attempts tolerated per chunk;
    - ``upgrade``: ask the server to refuse an image not newer than its own;
    - ``buf_size``/``buf_count``: the server's buffers when known; otherwise
      asked with ``params()`` (384 / one in flight if it cannot say).
    """

    def __init__(self, client, callback=None, verify=True, window=None, timeout_ms=None,
                 first_timeout_ms=None, retries=3, upgrade=False, buf_size=None, buf_count=None):
        super().__init__(callback)
        self.client = client
        self.window = window
        self.timeout_ms = timeout_ms
        self.first_timeout_ms = first_timeout_ms
        self.retries = retries
        self.upgrade = upgrade
        self.buf_size = buf_size
        self.buf_count = buf_count
        self._verifier = ImageVerifier() if verify else None
        self._mv = None
        self._seqs = self._ends = None
        self._count = 0
        self._size = 0
        self._fed = 0

    # ------------------------------------------------------------ contract

    def init(self, size, image=0, sha=None):
        """Start an upload of ``size`` bytes to image ``image``.

        ``sha``: the whole file's SHA-256 (bytes, hex, or an ImageInfo):
        sent with the first chunk so the neighbour can resume and report
        ``match``. Asks the server's buffer sizes unless given.
        """
        if self._count:
            self._cancel()
        if size <= 0:
            raise ValueError("nothing to upload (size %d)" % size)
        self._sha = file_sha(sha)
        self._size = size
        self._image = image
        ring = self._link()
        cap = ring * self._limit  # what a full window in flight may have to resend
        if self._mv is None or len(self._mv) < cap:
            self._mv = memoryview(bytearray(cap))  # the ring (only its view is kept)
        if self._seqs is None or len(self._seqs) < ring:
            self._seqs = [0] * ring
            self._ends = [0] * ring
        self._cap = cap
        self._nring = ring
        self._fed = 0  # bytes written by the caller (the stream position)
        self._base = 0  # stream offset of the oldest byte the ring holds
        self._next = 0  # next offset to send
        self._acked = 0  # offset the neighbour confirmed
        self._skip_to = 0  # the neighbour already holds up to here: check, don't send
        self._head = 0
        self._count = 0
        self._started = False
        self._failures = 0
        self._clean = 0
        self.retried = 0
        self.chunks = 0
        self.chunk_size = 0
        # (lo, hi, n): n data bytes per request for offsets lo <= off < hi (they
        # change only with the size of the offset's CBOR head): see _chunk_len.
        self._fit = (0, 0, 0)
        self.match = None
        self.resumed_from = 0
        self.skipped = 0  # bytes the neighbour held that were never written here (see offset)
        self.info = None
        if self._verifier is not None:
            self._verifier.start(size)
        self._t0 = ticks_ms()

    def offset(self):
        """Where the next :meth:`write` goes: where the neighbour stands, once it can tell.

        0 for a new upload. After the first writes (at least the 32-byte
        MCUboot header) of an upload given ``sha``, this sends the first
        request if it has not gone yet, waits for its answer (the erase, or
        the neighbour saying it already holds part of this file) and returns
        the offset the neighbour stands at: the caller must then continue
        from there (the bytes in between are verified through the neighbour's
        ``match``: see the module doc). A caller that does not ask keeps
        feeding from where it is, as before.
        """
        if self._sha is not None and not self._started and self._fed >= IMAGE_HEADER_SIZE:
            self._first_answer()
        if self._skip_to > self._fed:
            self._leap()
        return self._fed

    @property
    def held(self):
        """Bytes the neighbour has confirmed holding (moves ahead of :meth:`offset` on a resume)."""
        return self._acked

    def write(self, buf):
        """Take the next ``len(buf)`` bytes; blocks while the window is full. ``buf`` is not kept."""
        n = len(buf)
        if self._fed + n > self._size:
            raise ValueError("write of %d bytes at offset %d overruns the %d announced" % (n, self._fed, self._size))
        v = self._verifier
        mv = buf if isinstance(buf, memoryview) else memoryview(buf)
        i = 0
        while i < n:
            fed = self._fed
            k = n - i
            if fed < self._skip_to:
                # The neighbour holds these already: only check them.
                if k > self._skip_to - fed:
                    k = self._skip_to - fed
                if v is not None:
                    v.feed(mv[i:i + k])
                self._fed = fed + k
                i += k
                continue
            room = self._cap - (fed - self._base)
            if not room:
                # The ring is full: send what the window allows, wait for
                # the oldest answer (it frees room), go on.
                self._fill()
                if self._count:
                    self._take()
                continue
            if k > room:
                k = room
            piece = mv if k == n else mv[i:i + k]
            self._copy_in(piece, fed, k)
            if v is not None:
                v.feed(piece)
            self._fed = fed + k
            i += k
            self._fill()

    def done(self, ok=True):
        """Finish: ``ok`` True sends the rest, waits for the last answers and verifies.

        Returns the :class:`~smpdfu.mcuboot.ImageInfo` (None with
        ``verify=False``); raises :class:`~smpdfu.errors.BadImage` when the
        bytes were not a valid image or not the file ``sha`` names. ``ok``
        False abandons the upload (nothing is marked; the neighbour keeps the
        part it has, for a later resume with the same ``sha``).
        """
        if not ok:
            self._cancel()
            return None
        try:
            if self._fed < self._size:
                raise BadImage("image incomplete: %d of the %d announced bytes were written" % (self._fed, self._size))
            while self._acked < self._size:
                self._fill()
                if not self._count:
                    raise ProtocolError("upload stalled at offset %d of %d" % (self._acked, self._size))
                self._take()
            info = None
            if self._verifier is not None:
                info = self._verifier.finish()
                if self._sha is not None and info.file_sha != self._sha and not self.skipped:
                    raise BadImage("the image's SHA-256 is %s, not the sha given (%s)"
                                   % (hexstr(info.file_sha), hexstr(self._sha)))
            if self.match is False and self._sha is not None:
                raise ProtocolError("image hash mismatch after upload: the neighbour's copy is not the sha given")
            if self.skipped:
                self._vouched(info)
        except Exception as e:
            self._cancel()
            raise self._failed(e)
        self.info = info
        self._event(DONE, info)
        return info

    def _vouched(self, info):
        # Bytes skipped (see offset): only the neighbour's match covers them.
        if self.match is not True:
            raise Unvouched("the neighbour held %d bytes of this image that were not seen here and did not report "
                           "'match' for its slot (CONFIG_IMG_ENABLE_IMAGE_CHECK off?): the image cannot be "
                           "verified; feed it from 0 instead" % self.skipped)
        if info is not None:
            info.file_sha = self._sha  # what the neighbour's slot was checked against

    def schedule_update(self, permanent=False):
        """Mark the verified image for a test boot (``permanent``: for good); return the state list."""
        info = self.info
        if info is None:
            raise BadImage("no verified image to schedule: done(True) did not succeed")
        c = self.client
        slots = c.image_confirm(info.hash) if permanent else c.image_test(info.hash)
        for s in slots:
            if s.hash == info.hash and s.pending:
                return slots
        raise ProtocolError("the neighbour did not mark image %s pending" % info.hash_hex())

    def reset(self):
        """Reboot the neighbour (MCUboot then tests the scheduled image)."""
        self.client.reset()

    def result(self):
        """What the last upload did, as an :class:`~smpdfu.messages.UploadResult`."""
        return UploadResult(self._size, self._sha, self.match, ticks_diff(ticks_ms(), self._t0), self.chunks,
                            self.retried, self.resumed_from, self._window, self.chunk_size)

    def _first_answer(self):
        # Send the first request with the bytes written so far (Zephyr takes a short
        # first chunk) and wait for its answer.
        while not self._started:
            if not self._count:
                n = self._chunk_len(0)
                self._send(0, n if n < self._fed else self._fed)
            self._take()

    def _leap(self):
        # The caller continues where the neighbour stands: the bytes up to there are
        # never written here. The verifier passes over body bytes only, so the TLV
        # area is always walked on bytes seen (a neighbour holding part of it gets
        # the rest checked, not resent, from the end of the body on).
        n = self._skip_to - self._fed
        v = self._verifier
        if v is not None:
            if v.pass_left < n:
                n = v.pass_left
            if n <= 0:
                return
            v.skip(n)
        self._fed += n
        self.skipped += n

    # ------------------------------------------------------------ link

    def _link(self):
        # Buffer sizes -> request limit and window; returns the ring's chunk count.
        client = self.client
        buf_size = self.buf_size
        buf_count = self.buf_count
        if buf_size is None:
            try:
                p = client.params()
                buf_size = p.buf_size
                if buf_count is None:
                    buf_count = p.buf_count
            except SMPError:
                buf_size = DEFAULT_BUF_SIZE  # an old server: no params command
        window = self.window
        if window is None:
            window = _DEFAULT_WINDOW
            if buf_count is None or buf_count - 1 < window:
                window = buf_count - 1 if buf_count else 1
        if window < 1:
            window = 1
        self._window = window
        self._limit = client.transport.request_limit(buf_size)
        t = self.first_timeout_ms
        self._erase_note = ""
        if t is None:
            t, erase = erase_wait(client, self._size, self._image)
            self._erase_note = " (each waited %d ms: the device erases %d bytes of flash first)" % (t, erase)
        self._first_ms = t
        self._timeout = self.timeout_ms if self.timeout_ms is not None else client.timeout_ms
        return window

    def _copy_in(self, piece, off, k):
        # piece (k bytes, stream offset off) into the ring, wrapping.
        cap = self._cap
        i = off % cap
        if i + k <= cap:
            self._mv[i:i + k] = piece
        else:
            a = cap - i
            self._mv[i:cap] = piece[:a]
            self._mv[0:k - a] = piece[a:k]

    def _chunk_len(self, off):
        # Data bytes that fit in the request at ``off`` (the first one carries len, image, sha).
        # Past the first, they change only with the size of the offset's CBOR head.
        left = self._size - off
        lo, hi, n = self._fit
        if lo <= off < hi:
            return n if n < left else left
        hs = _head_size(off)
        fixed = HEADER_SIZE + 1 + 4 + hs + 5  # map head, "off": off, "data" key
        if not off:
            fixed += 4 + _head_size(self._size) + 6 + _head_size(self._image)
            if self._sha:
                fixed += 4 + 2 + 32  # "sha": 32-byte string (2-byte head)
            if self.upgrade:
                fixed += 9
        avail = self._limit - fixed
        n = avail - 1
        while n > 0 and n + _head_size(n) > avail:
            n -= 1
        if n <= 0:
            raise ProtocolError("server buffer of %d bytes is too small for an upload request" % self._limit)
        if off:
            # the offsets whose head has this size (no long-int literal: at most size + 1)
            lo, hi = (1, 24) if hs == 1 else (24, 0x100) if hs == 2 else (
                (0x100, 0x10000) if hs == 3 else (0x10000, self._size + 1))
            self._fit = (lo, hi, n)
        return n if n < left else left

    def _send(self, off, n):
        # Build the request at ``off`` with n data bytes from the ring, in
        # place, send it and keep it in the window.
        enc = self.client.encoder()
        dst = enc.buf
        first = not off
        if first:
            enc.map(4 + (self._sha is not None) + bool(self.upgrade))
            enc.text(_K_OFF)
        else:  # what enc.raw does, without the call: _chunk_len fitted the request to the buffer
            dst[_HDR:_HDR + 5] = _OPEN_2_OFF
            enc.pos = _HDR + 5
        enc.head(_MAJ_UINT, off)  # what enc.int does for off >= 0, one call less
        if first:
            enc.text(_K_LEN)
            enc.int(self._size)
            enc.text(_K_IMAGE)
            enc.int(self._image)
            if self._sha is not None:
                enc.text(_K_SHA)
                enc.bytes(self._sha)
            if self.upgrade:
                enc.text(_K_UPGRADE)
                enc.bool(True)
            self._event(ERASE_PENDING)
        enc.raw(_DATA_KEY)
        enc.head(_MAJ_BYTES, n)
        p = enc.pos
        cap = self._cap
        i = off % cap
        if i + n <= cap:
            dst[p:p + n] = self._mv[i:i + n]
        else:
            a = cap - i
            dst[p:p + a] = self._mv[i:cap]
            dst[p + a:p + n] = self._mv[0:n - a]
        enc.pos = p + n
        if n > self.chunk_size:
            self.chunk_size = n
        self.chunks += 1
        i = (self._head + self._count) % self._nring
        self._seqs[i] = self.client.send_encoded(OP_WRITE, GROUP_IMAGE, IMG_UPLOAD)
        self._ends[i] = off + n
        self._count += 1
        self._next = off + n

    # ------------------------------------------------------------ the window

    def _fill(self):
        # The first request goes alone: its answer may be a resume offset,
        # and the device erases the slot before answering.
        size = self._size
        while self._count < (self._window if self._started else 1) and self._next < size:
            off = self._next
            lo, hi, n = self._fit
            if lo <= off < hi:  # _chunk_len's usual answer, without the call
                if n > size - off:
                    n = size - off
            else:
                n = self._chunk_len(off)
            if off + n > self._fed:
                return
            self._send(off, n)

    def _take(self):
        # Wait for the oldest request's answer and act on it.
        seq = self._seqs[self._head]
        client = self.client
        try:
            got = client.poll()
            if got == seq:  # the usual case once the window is full: _wait's first step, inline
                pkt = client.take(seq)
            else:
                pkt = self._wait(seq, got, self._timeout if self._started else self._first_ms)
            off = self._answer(pkt)
        except (SMPTimeout, FrameError, _Lost) as e:
            self._lost(e)
            return
        except Exception:
            self._cancel()
            raise
        end = self._ends[self._head]
        self._head = (self._head + 1) % self._nring  # _pop, inline: this runs per chunk
        self._count -= 1
        if not self._started:
            self._started = True
            self._event(ERASE_DONE)
            if off != end:
                # The neighbour holds part of this image already (same sha).
                self.resumed_from = off
                self._jump(off)
        elif off == end:
            self._failures = 0
            self._clean += 1
            if self._window < self._nring and self._clean >= _REGROW_AFTER:
                self._window += 1
                self._clean = 0
        else:
            off = self._moved(off)
        self._acked = off
        if off > self._base:
            self._base = off
        cb = self.callback  # _event, inline
        if cb is not None:
            cb(PROGRESS, off)

    def _pop(self):
        self._head = (self._head + 1) % self._nring
        self._count -= 1

    def _moved(self, off):
        # The server wants another offset and drops what is still in flight;
        # it answers in order, so its last answer says where it stands.
        while self._count:
            try:
                seq = self._seqs[self._head]
                off = self._answer(self._wait(seq, self.client.poll(), self._timeout, False))
            except (SMPTimeout, FrameError):
                self._cancel()
                break
            self._pop()
        self._head = self._clean = 0
        self._window = 1
        if off <= self._acked and off >= self._base:
            self._failures += 1
            self.retried += 1
            if self._failures > self.retries:
                raise ProtocolError("upload stuck: the server keeps answering offset %d of %d" % (off, self._size))
        self._jump(off)
        return off

    def _jump(self, off):
        # Go on from ``off``: resend from the ring, or (ahead of the writes)
        # check the bytes up to it without sending them.
        if off < self._base:
            self._cancel()
            raise UploadLost("the neighbour lost the upload: it asks for offset %d, this target holds from %d "
                             "(did it reset?)" % (off, self._base), off)
        self._next = off
        if off > self._fed:
            self._skip_to = off
            self._base = off

    def _lost(self, e):
        # Lost or broken: forget what is in flight and go on one request at a
        # time from the last confirmed offset.
        self._cancel()
        self._clean = 0
        self._window = 1
        self._next = self._acked
        self._failures += 1
        self.retried += 1
        if self._failures > self.retries:
            if isinstance(e, _Lost):
                e = SMPTimeout("requests lost")
            raise type(e)("upload failed at offset %d of %d after %d attempts: %s%s"
                          % (self._acked, self._size, self._failures, e,
                             "" if self._started else self._erase_note))

    def _cancel(self):
        seqs = self._seqs
        for k in range(self._count):
            self.client.cancel(seqs[(self._head + k) % self._nring])
        self._head = self._count = 0

    def _wait(self, seq, got, timeout_ms, lost=True):
        """The raw answer packet to ``seq`` (header checked, see :meth:`SMPClient.take`),
        ``got`` being what the caller's ``client.poll()`` returned; raise
        :class:`_Lost` if a later request in flight is answered first."""
        client = self.client
        t0 = ticks_ms()
        while True:
            if got is None:
                pkt = client.take(seq)  # answered before (stashed by another poll)
                if pkt is not None:
                    return pkt
                left = timeout_ms - ticks_diff(ticks_ms(), t0)
                if left <= 0:
                    client.cancel(seq)
                    raise SMPTimeout("no response to image upload within %d ms" % timeout_ms)
                client.transport.wait(left if left < 50 else 50)
            elif got == seq:
                return client.take(seq)
            elif lost and self._in_flight(got):
                raise _Lost()
            got = client.poll()

    def _in_flight(self, seq):
        seqs = self._seqs
        for k in range(self._count):
            if seqs[(self._head + k) % self._nring] == seq:
                return True
        return False

    def _answer(self, pkt):
        # The offset an upload answer asks for. The usual answer, {"off": n}
        # or {"rc": 0, "off": n} (Zephyr's legacy rc), is read off the bytes;
        # anything else is decoded and type-checked in full (upload_offset).
        n = len(pkt)
        b = pkt[_HDR] if n > _HDR else 0  # an empty body: the general path names it
        p = _HDR + 1
        if b == 0xA2 and pkt.startswith(_RC_0, p):  # startswith: no slice object
            p += 4
        elif b != 0xA1:
            p = 0
        if p and pkt.startswith(_K_OFF_T, p):
            p += 4
            h = pkt[p] if p < n else 0xFF
            if h < 24:
                off = h
                p += 1
            elif h == 0x19 and p + 3 == n:
                off = (pkt[p + 1] << 8) | pkt[p + 2]
                p += 3
            elif h == 0x1A and p + 5 == n and pkt[p + 1] < 0x40:  # a small int on every build
                off = (pkt[p + 1] << 24) | (pkt[p + 2] << 16) | (pkt[p + 3] << 8) | pkt[p + 4]
                p += 5
            elif h == 0x18:
                off = pkt[p + 1] if p + 2 == n else -1
                p += 2
            else:
                p = 0
            if p == n and 0 <= off <= self._size:
                return off
        off, m = upload_offset(self.client.decode(pkt), self._size)  # type-checked: "match": "no" is no match
        if off == self._size and m is not None:
            self.match = m  # False is raised by done(), after the image check
        return off
