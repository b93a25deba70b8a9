"""dfu_target backend: the neighbour's slot, through SMP image upload.

Bytes given to :meth:`SMPTarget.write` are copied into one preallocated ring
(a window's worth of requests; given a stream, ``write`` reads it straight
into the ring, with no buffer of the caller's) and sent from there as image
upload requests, each built in place in the transport's packet buffer: no
buffer is allocated per write or per chunk, and nothing grows with the image.
The ring is what a lost request is resent from; its size is the caller's to
choose (``window``, ``ring``).

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
  (:class:`~smpdfu.dfu_smp_rare.Unvouched`, a BadImage) and nothing is marked for
  test; feeding the image again from 0 then verifies it here.
"""

from .compat import const, ticks_diff, ticks_ms
from .dfu_target import DONE, ERASE_DONE, ERASE_PENDING, ERROR, PROGRESS, Target, file_sha
from .errors import FrameError, ProtocolError, SMPError, SMPTimeout
from .mcuboot import ImageVerifier
from .messages import DEFAULT_BUF_SIZE, UploadResult, upload_offset
from .proto import GROUP_IMAGE, IMG_UPLOAD, OP_WRITE

_MAJ_UINT = const(0)
_MAJ_BYTES = const(2)
_HDR = const(8)  # the SMP header (header.HEADER_SIZE; const() takes a literal)
_IMAGE_HDR = const(32)  # the MCUboot image header (mcuboot.IMAGE_HEADER_SIZE)
_DEFAULT_WINDOW = const(3)  # requests in flight when the server has spare buffers
_REGROW_AFTER = const(8)  # clean answers in a row before the window grows again after a loss
_TIMEOUT = const(2)  # SMPTarget._opt[_TIMEOUT]: timeout_ms
_RETRIES = const(4)
_UPGRADE = const(5)
# The first chunk waits for the device to erase what the image needs (Zephyr's
# img_mgmt_erase_image_data(0, len), unless progressive erase is configured):
# ~85 ms per 4 KiB page on nRF52840, plus the trailer's page at the slot's end.
_ERASE_PER_4K_MS = const(100)
_TRAILER_PAGES = const(1)


class UploadLost(ProtocolError):
    """The neighbour lost the upload (it reset) and wants bytes already gone by.

    ``offset`` is where it stands. Feed the image again from 0 after a new
    :meth:`SMPTarget.init`: the first request (with ``sha``) lets it resume
    from whatever it still holds.
    """


def rare(name, *args):
    """``dfu_smp_rare.name(*args)``: what runs rarely (failures, schedule_update, the SHA
    pass of upload), from a module loaded only when it runs."""
    from . import dfu_smp_rare

    return getattr(dfu_smp_rare, name)(*args)


class SMPTarget(Target):
    """The neighbour's secondary slot over an :class:`~smpdfu.client.SMPClient`.

    - ``verify``: check the MCUboot image while it streams (default); False
      sends any bytes (``done`` then returns None);
    - ``window``: requests in flight (default: up to 3, at most the server's
      ``buf_count - 1``);
    - ``ring``: bytes of the resend ring, the one data buffer the upload
      allocates (default: ``window`` requests of the largest size the server
      takes, ``request_limit(buf_size)``). A smaller ring keeps fewer
      requests in flight (``ring // request``, at least one), and one smaller
      than a request makes each request at most ``ring`` bytes: what a board
      short of heap passes (the ring holds ``window * request`` bytes). A
      ``bytearray`` is used as the ring itself (its length the size): a
      board makes it early, before its heap is in pieces;
    - ``first_timeout_ms``: for the first chunk, which waits for the slot
      erase (default: the client's timeout plus ~100 ms per 4 KiB page the
      image and its trailer need, never more than the device's slot);
      ``timeout_ms`` for the others (default: the client's);
    - ``retries``: consecutive failed attempts tolerated per chunk;
    - ``upgrade``: ask the server to refuse an image not newer than its own;
    - ``buf_size``/``buf_count``: the server's buffers when known; otherwise
      asked with ``params()`` (384 / one in flight if it cannot say).

    After an upload: ``held`` (bytes the neighbour confirmed holding: ahead of
    :meth:`offset` on a resume), ``match``, ``resumed_from``, ``skipped``,
    ``chunks``, ``retried``; :meth:`result` sums them up.
    """

    def __init__(self, client, callback=None, verify=True, window=None, ring=None, timeout_ms=None,
                 first_timeout_ms=None, retries=3, upgrade=False, buf_size=None, buf_count=None):
        # Few attributes: each is a slot in a table that grows in steps on a
        # board's heap (the options are one tuple, what only the first request
        # needs another).
        self.callback = callback
        self.client = client
        self._opt = (window, ring, timeout_ms, first_timeout_ms, retries, upgrade, buf_size, buf_count, verify)
        # All of them now, so that the table has its last size before the
        # upload allocates anything (init sets them again).
        self._verifier = self._mv = self._fly = self._up = self.match = self.info = self.resumed_from = None
        self._window = self._wmax = self._cap = self._n = self._size = self._fed = self._next = self.held = 0
        self._count = self._streak = self.retried = self.chunks = self.skipped = 0

    # ------------------------------------------------------------ contract

    def init(self, size, image=0, sha=None):
        """Start an upload of ``size`` bytes to image ``image``.

        ``sha``: the whole file's SHA-256 (bytes, hex, or an ImageInfo):
        sent with the first chunk so the neighbour can resume and report
        ``match``. Asks the server's buffer sizes unless given.
        """
        self._cancel()
        if size <= 0:
            raise rare("size", size)
        sha = file_sha(sha)
        client = self.client
        w, ring, _, first_ms, _, upgrade, buf_size, buf_count, verify = self._opt
        if buf_size is None:
            try:
                p = client.params()
                buf_size = p.buf_size
                if buf_count is None:
                    buf_count = p.buf_count
            except SMPError:
                buf_size = DEFAULT_BUF_SIZE  # an old server: no params command
        w = max(1, w or min(_DEFAULT_WINDOW, (buf_count or 2) - 1))
        limit = client.transport.request_limit(buf_size)  # the largest request
        buf = ring
        if type(ring) is bytearray:  # the caller's own, made while its heap was still in one piece
            ring = len(buf)
        ring = ring or w * limit
        if ring < limit:
            limit = ring
        w = max(1, min(w, ring // limit))
        # Data bytes per request: besides them a request holds the SMP header,
        # {"off": off, "data": <head>} (21 bytes below offset 0x10000, 2 more
        # above) and in the first one "len", "image" (at most 18 bytes),
        # "sha", "upgrade".
        n = limit - 21
        n = n - 3 if n > 258 else min(n - 2, 255) if n > 25 else min(n - 1, 23)
        n0 = n - 16 - (38 if sha else 0) - (9 if upgrade else 0)
        if n0 <= 0:
            raise rare("room", limit)
        erase = 0
        if first_ms is None:
            # The device erases the flash the image needs (its pages and the
            # trailer's) before it answers offset 0: the first chunk waits the
            # client's timeout plus that erase, never more than the whole slot
            # (its size from slot info, when the device can say). A server
            # that erases its whole slot may take longer: the first chunk is
            # then sent again, and its answer says where to go on.
            pages = ((size + 4095) >> 12) + _TRAILER_PAGES
            try:
                for im in client.slot_info():
                    if im["image"] == image:
                        for s in im["slots"]:
                            k = (s["size"] + 4095) >> 12
                            if 0 < k < pages:
                                pages = k
            except SMPError:
                pass  # an older server: no slot info command
            first_ms = client.timeout_ms + pages * _ERASE_PER_4K_MS
            erase = pages << 12
        # Every attribute is set before the ring is made (its table grows
        # first). _fed: bytes written by the caller (the stream position);
        # _next: next offset to send; held: what the neighbour confirmed (the
        # oldest byte the ring must keep; ahead of _fed when the neighbour
        # holds bytes not written yet: they are checked, not sent);
        # _streak: clean answers in a row, or minus the failed attempts in a
        # row; resumed_from: None until the first request's answer; _up: this
        # upload's constants (what the first request carries and waits for,
        # the start time).
        self._size = size
        self._n = n
        self._window = self._wmax = w
        self._cap = w * limit
        self._up = (first_ms, erase, n0, image, sha, ticks_ms())
        self._fed = self._next = self.held = 0
        self._count = self._streak = self.retried = self.chunks = self.skipped = 0
        self.match = self.info = self.resumed_from = None
        self._mv = self._fly = self._verifier = None  # the old ring can go before the new one is made
        if verify:
            self._verifier = ImageVerifier(size)
        n = w * limit  # what a full window in flight may have to resend
        if type(buf) is not bytearray:
            buf = bytearray(n)
        self._mv = memoryview(buf)[:n]
        # Each request in flight: its seq, the offset past its data; request
        # number c (self.chunks before it was sent) at [c % w * 2].
        self._fly = [0] * (2 * w)

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
        if self._up[4] is not None and self._fed >= _IMAGE_HDR:
            while self.resumed_from is None:
                if not self._count:
                    self._fill(True)  # the first request, with what was written
                self._take()
        # Continue where the neighbour stands: the bytes up to there are never
        # written here. The verifier passes over body bytes only, so the TLV
        # area is always walked on bytes seen (a neighbour holding part of it
        # gets the rest checked, not resent, from the end of the body on).
        n = self.held - self._fed
        v = self._verifier
        if v is not None and v.pass_left < n:
            n = v.pass_left
        if n > 0:
            if v is not None:
                v.skip(n)
            self._fed += n
            self.skipped += n
        return self._fed

    def write(self, src):
        """Take the next ``len(src)`` bytes; blocks while the window is full. ``src`` is not kept.

        ``src`` may also be a stream (anything with ``readinto``): the rest of
        the image is then read from it straight into the ring, with no buffer
        of the caller's (:class:`~smpdfu.errors.ProtocolError` if it ends early).
        """
        rd = getattr(src, "readinto", None)
        if rd is None:
            n = len(src)
            if self._fed + n > self._size:
                raise rare("overrun", self, n)
            if not isinstance(src, memoryview):
                src = memoryview(src)
        else:
            n = self._size - self._fed
        v = self._verifier
        mv = self._mv
        cap = len(mv)
        i = 0
        while i < n:
            fed = self._fed
            held = self.held
            k = n - i
            send = fed >= held
            if send:
                room = cap - fed + held
                if not room:
                    # The ring is full: send what the window allows, wait for
                    # the oldest answer (it frees room), go on.
                    self._fill()
                    if self._count:
                        self._take()
                    continue
                if k > room:
                    k = room
            elif k > held - fed:
                k = held - fed  # the neighbour holds these already: only check them
            j = fed % cap
            if k > cap - j:
                k = cap - j  # (the ring wraps)
            if rd is None:
                piece = src if k == n else src[i:i + k]
                mv[j:j + k] = piece
            else:
                piece = mv[j:j + k]
                got = rd(piece)
                if not got:
                    raise rare("ended", self)
                if got < k:
                    k = got
                    piece = mv[j:j + k]
            if v is not None:
                v.feed(piece)
            self._fed = fed + k
            i += k
            if send:
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
        size = self._size
        sha = self._up[4]
        info = None
        try:
            while self._fed == size and self.held < size:
                self._fill()
                if not self._count:
                    break
                self._take()
            if self._fed < size or self.held < size:
                raise rare("partial", self)
            if self._verifier is not None:
                info = self._verifier.finish()
                if sha is not None and info.file_sha != sha and not self.skipped:
                    raise rare("mismatch", True)
            if self.match is False and sha is not None:
                raise rare("mismatch", False)
            if self.skipped:
                # Bytes skipped (see offset): only the neighbour's match covers them.
                if self.match is not True:
                    raise rare("unvouched", self)
                if info is not None:
                    info.file_sha = sha  # what the neighbour's slot was checked against
        except Exception as e:
            self._cancel()
            self._event(ERROR, e)
            raise
        self.info = info
        self._event(DONE, info)
        return info

    def schedule_update(self, permanent=False):
        """Mark the verified image for a test boot (``permanent``: for good); return the state list."""
        return rare("schedule_update", self, permanent)

    def reset(self):
        """Reboot the neighbour (MCUboot then tests the scheduled image)."""
        self.client.reset()

    def result(self):
        """What the last upload did, as an :class:`~smpdfu.messages.UploadResult`."""
        return UploadResult(self._size, self._up[4], self.match, ticks_diff(ticks_ms(), self._up[5]), self.chunks,
                            self.retried, self.resumed_from, self._window, min(self._n, self._size))

    # ------------------------------------------------------------ the window

    def _fill(self, first=False):
        # Send the requests the window and the bytes written allow, each built
        # in place in the transport's packet buffer, its data from the ring.
        # The first request goes alone: its answer may be a resume offset, and
        # the device erases the slot before answering. ``first``: send it
        # with what was written, short of a whole request (offset()).
        size = self._size
        while self._count < (1 if self.resumed_from is None else self._window) and self._next < size:
            off = self._next
            n = self._n - 2 if off > 0xFFFF else self._n if off else self._up[2]
            if n > size - off:
                n = size - off
            if off + n > self._fed:
                if not first:
                    return
                n = self._fed - off
            client = self.client
            mv = self._mv
            if off:  # {"off": off, "data": ...}, without the encoder's calls where init fitted it
                enc = client.encoder()
                dst = enc.buf
                dst[_HDR:_HDR + 5] = b"\xa2\x63off"
                enc.pos = _HDR + 5
                enc.head(_MAJ_UINT, off)
                p = enc.pos
                dst[p:p + 5] = b"\x64data"
                enc.pos = p + 5
                enc.head(_MAJ_BYTES, n)
                p = enc.pos
                j = off % self._cap
                a = self._cap - j
                if a >= n:
                    dst[p:p + n] = mv[j:j + n]
                else:  # (the ring wraps)
                    dst[p:p + a] = mv[j:]
                    dst[p + a:p + n] = mv[:n - a]
                enc.pos = p + n
                seq = client.send_encoded(OP_WRITE, GROUP_IMAGE, IMG_UPLOAD)
            else:  # the first request: its data at the ring's start
                image, sha = self._up[3:5]
                body = {"off": 0, "len": size, "image": image, "data": mv[:n]}
                if sha is not None:
                    body["sha"] = sha
                if self._opt[_UPGRADE]:
                    body["upgrade"] = True
                self._event(ERASE_PENDING)
                seq = client.send_request(OP_WRITE, GROUP_IMAGE, IMG_UPLOAD, body)
            fly = self._fly
            j = self.chunks % self._wmax * 2
            fly[j] = seq
            fly[j + 1] = self._next = off + n
            self.chunks += 1
            self._count += 1

    def _take(self):
        # Wait for the oldest request's answer and act on it. The server
        # answers in order: a later request answered first means this one (or
        # its answer) was lost. Then, or after a timeout or a broken frame, or
        # when the server asks for another offset than the one past this
        # request, what is in flight is forgotten (the server drops requests at
        # offsets it does not expect) and the upload goes on one request at a
        # time from where the server stands; the window grows back after
        # _REGROW_AFTER clean answers in a row. The usual answer, {"off": n}
        # or {"rc": 0, "off": n} (Zephyr's legacy rc), is read off its bytes;
        # anything else is decoded and type-checked in full (upload_offset).
        client = self.client
        size = self._size
        fly = self._fly
        i = (self.chunks - self._count) % self._wmax * 2  # the oldest request in flight
        seq = fly[i]
        end = fly[i + 1]
        err = t0 = None
        try:
            got = client.poll()
            while got != seq:
                if got is not None:
                    raise SMPTimeout("requests lost")
                if t0 is None:
                    t0 = ticks_ms()
                ms = (self._opt[_TIMEOUT] or client.timeout_ms) if self.resumed_from is not None else self._up[0]
                left = ms - ticks_diff(ticks_ms(), t0)
                if left <= 0:
                    raise SMPTimeout("no answer within %d ms" % ms)
                client.transport.wait(left if left < 50 else 50)
                got = client.poll()
            pkt = client.take(seq)
            n = len(pkt)
            p = pkt[_HDR] if n > _HDR else 0
            p = 9 if p == 0xA1 else 13 if p == 0xA2 and pkt.startswith(b"\x62rc\x00", 9) else n
            if pkt.startswith(b"\x63off\x19", p) and n == p + 7:  # startswith: no slice object
                off = pkt[p + 5] << 8 | pkt[p + 6]
            elif pkt.startswith(b"\x63off\x1a", p) and n == p + 9 and pkt[p + 5] < 0x40:  # a small int on every build
                off = pkt[p + 5] << 24 | pkt[p + 6] << 16 | pkt[p + 7] << 8 | pkt[p + 8]
            else:
                off = -1
            if not 0 <= off <= size:
                off, m = upload_offset(client.decode(pkt), size)  # type-checked: "match": "no" is no match
                if off == size and m is not None:
                    self.match = m  # False is raised by done(), after the image check
        except (SMPTimeout, FrameError) as e:
            err = e
        except Exception:
            self._cancel()
            raise
        started = self.resumed_from is not None
        if err is None:
            self._count -= 1
            if off == end:
                s = self._streak
                s = s + 1 if s > 0 else 1  # (a run of failures ends)
                if s >= _REGROW_AFTER and self._window < self._wmax:
                    self._window += 1
                    s = 0
                self._streak = s
        else:
            off = self.held  # go on from the last confirmed offset
        if err is not None or off != end and started:
            self._cancel()
            self._window = 1
            if off < self.held:
                raise rare("lost", self, off)
            s = self._streak
            if s > 0:
                s = 0  # (a run of clean answers ends)
            if err is not None or off == self.held:  # (not when the server jumps ahead)
                s -= 1
                self.retried += 1
            self._streak = s
            if -s > self._opt[_RETRIES]:
                raise rare("attempts", self, err)
        if off != end:
            self._next = off  # (ahead of the writes: held, then checked, not sent)
        if err is not None:
            return
        if not started:
            # off != end: the neighbour holds part of this image already (same sha)
            self.resumed_from = 0 if off == end else off
            self._event(ERASE_DONE)
        self.held = off
        cb = self.callback  # _event, inline: this runs per chunk
        if cb is not None:
            cb(PROGRESS, off)

    def _cancel(self):
        # Forget the requests in flight (their answers are ignored if they come).
        c = self._count
        if c:
            for k in range(self.chunks - c, self.chunks):
                self.client.cancel(self._fly[k % self._wmax * 2])
            self._count = 0
