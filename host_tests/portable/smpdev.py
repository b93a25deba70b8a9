"""An in-process SMP device for tests: the portable SMP server over RAM flash.

:class:`SMPDevice` *is* a UART (``write`` / ``read_available`` / ``close``),
so ``smpdfu.transport.SerialTransport`` takes it as its link. What the client
writes is decoded through the real serial framing and handed to
``smpdfu.server.SMPServer`` with the real OS and image groups at once
(synchronously, no threads: it runs on MicroPython too); the framed answers
wait to be read. The image group works on :class:`MemoryFlash`, two MCUboot
slots in RAM where only pages that were written take memory.

Fault hooks sit on the link, between the wire and the server: drop requests,
break answers, hold answers and release them in another order, delay them,
write console text, inject raw bytes, reset the device mid-upload.

``skim=True`` is the cheap mode for memory and throughput tests of the
*client*: upload chunks past offset 0 are not decoded (only the first line of
their frame: header, ``off`` and the data length); the server sees them as
``{off, data}`` with zeroed data of that length, over a flash that keeps
nothing. Everything else (offset 0, other commands) is decoded fully.
"""

from smpdfu.bootutil import set_pending
from smpdfu.cbor import Encoder, loads
from smpdfu.compat import a2b_base64, sha256, ticks_diff, ticks_ms
from smpdfu.errcodes import SMP_V1
from smpdfu.errors import CBORError, FrameError
from smpdfu.framing import FrameDecoder, FrameEncoder
from smpdfu.header import HEADER_SIZE, pack_header
from smpdfu.proto import GROUP_IMAGE, IMG_UPLOAD, OP_WRITE, OS_PARAMS, SMP_V2
from smpdfu.server import SMPServer, unpack_header
from smpdfu.server_image import ImageGroup
from smpdfu.server_os import MODE_SWAP_MOVE, OSGroup

from _portable import dumps
from mcuimg import build

# A serial frame's length and CRC share the server's net_buf with the packet.
_FRAME_OVERHEAD = 4

RUNNING_VERSION = (1, 0, 0, 0)


class MemoryFlash:
    """Two MCUboot slots in RAM, the image-store interface of ``smpdfu.server_image``.

    Pages are allocated when first written; an erased page costs nothing.
    Writes program the bytes as given (no NOR bit check).
    """

    def __init__(self, slot_size=1 << 20, page_size=4096):
        if slot_size % page_size:
            raise ValueError("slot size %d is not a multiple of the page size %d" % (slot_size, page_size))
        self.page_size = page_size
        self._slot_size = slot_size
        self._pages = [{}, {}]
        self._erased = b"\xff" * page_size

    def slot_size(self, slot):
        return self._slot_size

    def _check(self, slot, off, n):
        if slot not in (0, 1) or off < 0 or off + n > self._slot_size:
            raise ValueError("flash access out of range: slot %d, %d bytes at %d" % (slot, n, off))

    def read(self, slot, off, buf):
        n = len(buf)
        self._check(slot, off, n)
        ps = self.page_size
        pages = self._pages[slot]
        k = 0
        while k < n:
            i, o = divmod(off + k, ps)
            m = min(ps - o, n - k)
            page = pages.get(i)
            buf[k:k + m] = memoryview(page)[o:o + m] if page is not None else self._erased[:m]
            k += m

    def write(self, slot, off, data):
        n = len(data)
        self._check(slot, off, n)
        ps = self.page_size
        pages = self._pages[slot]
        k = 0
        while k < n:
            i, o = divmod(off + k, ps)
            m = min(ps - o, n - k)
            page = pages.get(i)
            if page is None:
                page = pages[i] = bytearray(self._erased)
            page[o:o + m] = data[k:k + m]
            k += m

    def erase(self, slot, off, size):
        self._check(slot, off, size)
        ps = self.page_size
        pages = self._pages[slot]
        for i in range(off // ps, (off + size + ps - 1) // ps):
            pages.pop(i, None)

    def is_erased(self, slot):
        for page in self._pages[slot].values():
            if page != self._erased:
                return False
        return True


class NullFlash:
    """A flash that keeps nothing: reads are erased, writes only counted (the skim mode)."""

    page_size = 4096

    def __init__(self, slot_size=1 << 20):
        self._slot_size = slot_size
        self.written = 0

    def slot_size(self, slot):
        return self._slot_size

    def read(self, slot, off, buf):
        for i in range(len(buf)):
            buf[i] = 0xFF

    def write(self, slot, off, data):
        self.written += len(data)

    def erase(self, slot, off, size):
        pass

    def is_erased(self, slot):
        return True


class _Reset(Exception):
    pass


class SMPDevice:
    """An SMP server behind a UART interface. See the module doc.

    Build options: ``buf_size`` / ``buf_count`` (the transport's net_buf,
    reported by params; a request that does not fit ``buf_size`` is dropped as
    Zephyr's serial transport drops it), ``slot_size``, ``v1`` (an older
    Zephyr: v1 headers, rc-form errors), ``params`` (False: no params command,
    ENOTSUP), ``image_check`` (False: no ``match`` in the last upload answer),
    ``running`` (the image in slot 0: its version tuple, image bytes, or
    None), ``bootloader_mode``, ``skim``.

    Fault hooks (attributes; set them any time):

    - ``drop_requests``: silently drop the next N requests (lost on the link)
    - ``drop_upload_offsets``: upload offsets whose request is dropped once each
    - ``corrupt_responses``: break the CRC of the next N answers
    - ``corrupt_upload_offsets``: upload offsets whose answer is broken once each
    - ``delay_ms``: answers become readable this much later
    - ``hold``: keep answers until :meth:`release`
    - ``console``: text written before every answer (log lines)
    - ``errors``: {(group, cmd): body} answered instead of the server's answer
      (``body``: a dict, or bytes that are its CBOR already)
    - ``max_read``: largest piece one ``read_available`` returns (0: all)
    - ``reset_at``: upload offset at which the device resets instead of answering
    """

    def __init__(self, buf_size=384, buf_count=4, slot_size=1 << 20, v1=False, params=True,
                 image_check=True, running=RUNNING_VERSION, bootloader_mode=MODE_SWAP_MOVE,
                 skim=False, page_size=4096):
        self.buf_size = buf_size
        self.buf_count = buf_count
        self.frame_overhead = _FRAME_OVERHEAD  # serial framing shares the net_buf (BLE: 0)
        self.skim = skim
        self.flash = NullFlash(slot_size) if skim else MemoryFlash(slot_size, page_size)
        self.server = SMPServer(buf_size, buf_count, v1_only=v1)
        self.os = OSGroup(version_fn=self._running_version, reset_fn=self._reset_cmd,
                          bootloader_mode=bootloader_mode)
        if not params:
            del self.os.handlers[OS_PARAMS]
        # skim: the flash keeps nothing, so there is nothing to check a hash against
        self.image = ImageGroup(self.flash, image_check=image_check and not skim, listener=self._event)
        self.server.register(self.os)
        self.server.register(self.image)
        if running is not None and not skim:
            self.put_image(0, build(version=running, fill=0x11) if isinstance(running, tuple) else running)
        self._dec = FrameDecoder(max_packet=4096, max_queue=64)
        self._enc = FrameEncoder(max(buf_size, 512))
        self._out = bytearray()
        self._delayed = []  # [(ready_at_ms, framed bytes)]
        self._held = []
        self._line = bytearray()  # skim mode: the line being received
        self._skip_lines = 0
        self._zeros = None
        self._pkt = None
        self._chunk = 0  # data bytes of the upload request being processed
        # fault hooks
        self.drop_requests = 0
        self.drop_upload_offsets = []
        self.corrupt_responses = 0
        self.corrupt_upload_offsets = []
        self.delay_ms = 0
        self.hold = False
        self.console = b""
        self.errors = {}
        self.max_read = 0
        self.reset_at = None
        # what happened
        self.requests = 0
        self.bad_frames = 0
        self.oversize = 0  # requests dropped for not fitting buf_size
        self.max_request = 0  # largest packet (header + CBOR) received
        self.upload_requests = 0
        self.written = 0  # upload data bytes the server accepted
        self.erases = 0  # slot erases: a new upload's first chunk, or the erase command
        self.resets = 0
        self.closed = False
        self.max_unread = 0  # most answers waiting unread at once (requests in flight)
        self._unread = 0
        self.first_chunk = None  # the last off-0 upload request, without data
        self.events = []  # (kind, info) from the image group, except chunks

    # ------------------------------------------------------------ UART side

    def write(self, buf):
        if self.skim:
            self._skim_write(buf)
        else:
            self._dec.feed(bytes(buf))
            self._drain()
        return len(buf)

    def _drain(self):
        while True:
            try:
                pkt = self._dec.next()
            except FrameError:
                self.bad_frames += 1  # Zephyr drops broken frames silently
                continue
            if pkt is None:
                return
            self._handle(pkt)

    def read_available(self):
        if self._delayed:
            now = ticks_ms()
            while self._delayed and ticks_diff(now, self._delayed[0][0]) >= 0:
                self._out.extend(self._delayed.pop(0)[1])
        n = len(self._out)
        if not n:
            return None
        self._unread = 0
        if self.max_read and n > self.max_read:
            n = self.max_read
        data = bytes(self._out[:n])
        self._out[:n] = b""
        return data

    def close(self):
        self.closed = True

    # ------------------------------------------------------------ test helpers

    def release(self, order=None):
        """Send held answers: in ``order`` (list of indexes) or as they came."""
        held = self._held
        self._held = []
        if order is None:
            order = range(len(held))
        for i in order:
            self._out.extend(held[i])

    def held(self):
        """Number of answers held back (``hold = True``)."""
        return len(self._held)

    def inject(self, op, group, cmd, seq, body, version=1):
        """Send an unsolicited packet (e.g. a stray or late response)."""
        self._out.extend(self._enc.encode(packet=_packet(op, group, cmd, seq, body, version)))

    def inject_raw(self, data):
        """Put raw bytes on the line (garbage, partial frames)."""
        self._out.extend(data)

    def reset(self):
        """The device resets: upload progress (RAM) and unread link data are lost; flash stays."""
        self.resets += 1
        self.image.reset_upload()
        self._dec.reset()
        self._line[:] = b""
        self._skip_lines = 0
        self._out[:] = b""
        self._delayed = []
        self._held = []

    def request(self, op, group, cmd, body, seq=0):
        """Give one request straight to the server (no link, no faults); the decoded answer."""
        rsp = self.server.process(_packet(op, group, cmd, seq, body))[0]
        return loads(memoryview(rsp)[HEADER_SIZE:])

    def start_upload(self, length, sha, data_prefix, chunk=256):
        """Upload ``data_prefix`` of a ``length``-byte image with ``sha`` straight to the server.

        The device then holds a partial upload, as after an interrupted one.
        """
        saved = (self.written, self.erases, len(self.events))
        off = 0
        n = len(data_prefix)
        while off < n:
            body = {"off": off, "data": bytes(data_prefix[off:off + chunk])}
            if off == 0:
                body["len"] = length
                body["sha"] = bytes(sha)
                body["image"] = 0
            rsp = self.request(OP_WRITE, GROUP_IMAGE, IMG_UPLOAD, body)
            if rsp.get("off") != off + len(body["data"]):
                raise ValueError("start_upload: the server answered %r" % (rsp,))
            off = rsp["off"]
        # setup, not traffic: the counters describe what the client does next
        self.written, self.erases = saved[0], saved[1]
        del self.events[saved[2]:]

    @property
    def upload_off(self):
        """The offset the server expects next in the upload in progress."""
        return self.image.off

    def put_image(self, slot, image):
        """Program ``image`` into ``slot`` (erasing the slot first), as a flasher would."""
        self.flash.erase(slot, 0, self.flash.slot_size(slot))
        self.flash.write(slot, 0, image)

    def mark_pending(self, permanent=False):
        """Mark slot 1 for test (or permanent) as the bootloader library does."""
        rc = set_pending(self.flash, permanent)
        if rc:
            raise ValueError("set_pending failed: image group rc %d" % rc)

    def slot(self, slot, size, off=0):
        """``size`` bytes of ``slot`` from ``off``, as bytes."""
        buf = bytearray(size)
        self.flash.read(slot, off, buf)
        return bytes(buf)

    def slot_sha(self, slot, size):
        """SHA-256 of the first ``size`` bytes of ``slot``, read in 1 KB pieces."""
        h = sha256()
        buf = bytearray(1024)
        off = 0
        while off < size:
            mv = memoryview(buf)[:min(1024, size - off)]
            self.flash.read(slot, off, mv)
            h.update(mv)
            off += len(mv)
        return h.digest()

    def state(self):
        """The image state list as the server reports it (dicts)."""
        return self.image.state_list()

    # ------------------------------------------------------------ server side

    def _running_version(self):
        return self.image.running_version() or "0.0.0"

    def _reset_cmd(self):
        # The answer still goes out; the RAM upload state is gone after the reboot.
        self.resets += 1
        self.image.reset_upload()

    def _event(self, kind, info):
        if kind == "upload-chunk":
            self.written += self._chunk
            return
        if kind == "upload-start" or kind == "erase":
            self.erases += 1
        self.events.append((kind, info))

    def _handle(self, pkt, wire_len=0):
        self.requests += 1
        n = wire_len or len(pkt)
        if n > self.max_request:
            self.max_request = n
        if n > self.buf_size - self.frame_overhead:
            self.oversize += 1  # does not fit Zephyr's net_buf: dropped silently
            return
        if self.drop_requests:
            self.drop_requests -= 1
            return
        op, ver, _flags, length, group, seq, cmd = unpack_header(pkt)
        corrupt = False
        self._chunk = 0
        if group == GROUP_IMAGE and cmd == IMG_UPLOAD and op == OP_WRITE:
            corrupt = self._upload_faults(memoryview(pkt)[HEADER_SIZE:HEADER_SIZE + length])
            if corrupt is None:
                return
        override = self.errors.get((group, cmd))
        if override is not None:
            answers = [_packet(op | 1, group, cmd, seq, override, SMP_V1 if self.server.v1_only else ver)]
        else:
            answers = self.server.process(pkt)
        if self.corrupt_responses:
            self.corrupt_responses -= 1
            corrupt = True
        for a in answers:
            framed = bytearray(self._enc.encode(packet=a))
            if corrupt:
                i = 10  # a base64 character inside the first line
                framed[i] = 0x41 if framed[i] != 0x41 else 0x42
            if self.console:
                self._queue(self.console)
            self._queue(framed)

    def _upload_faults(self, raw):
        # The fault hooks for one upload request: None when it is lost (dropped,
        # or the device resets), else whether its answer is to be broken.
        self.upload_requests += 1
        try:
            body = loads(raw, True) if len(raw) else {}
        except CBORError:
            body = None  # the server answers EINVAL
        if not isinstance(body, dict):
            return False
        off = body.get("off")
        data = body.get("data")
        self._chunk = len(data) if data is not None else 0
        if off in self.drop_upload_offsets:
            self.drop_upload_offsets.remove(off)
            return None
        if self.reset_at is not None and off is not None and off >= self.reset_at:
            self.reset_at = None
            self.reset()
            return None
        if off == 0:
            self.first_chunk = dict((k, bytes(v) if isinstance(v, memoryview) else v)
                                    for k, v in body.items() if k != "data")
        if off in self.corrupt_upload_offsets:
            self.corrupt_upload_offsets.remove(off)
            return True
        return False

    def _queue(self, data):
        self._unread += 1
        if self._unread > self.max_unread:
            self.max_unread = self._unread
        if self.hold:
            self._held.append(data)
        elif self.delay_ms or self._delayed:  # keep answers in order
            self._delayed.append((ticks_ms() + self.delay_ms, data))
        else:
            self._out.extend(data)

    # ------------------------------------------------------------ skim mode

    def _skim_write(self, buf):
        data = bytes(buf)
        line = self._line
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                line.extend(data[start:])
                return
            line.extend(data[start:nl + 1])
            start = nl + 1
            self._skim_line(line)
            line[:] = b""

    def _skim_line(self, line):
        if self._skip_lines:
            self._skip_lines -= 1
            return
        if len(line) > 2 and line[0] == 6 and line[1] == 9:
            raw = a2b_base64(bytes(line[2:-1]))
            total = ((raw[0] << 8) | raw[1]) + 2
            off = 0
            if len(raw) >= 10 and total > len(raw) and _is_upload(raw):
                try:
                    off, n = _skim_upload(raw)
                except IndexError:
                    off = 0  # the line ends before "data": decode the whole frame
                if off:
                    self._skip_lines = (total + 92) // 93 - 1
                    self._handle(self._zero_chunk(raw, off, n), total - 4)
                    return
        self._dec.feed(bytes(line))
        self._drain()

    def _zero_chunk(self, raw, off, n):
        # The request as the server would decode it, with zeroed data.
        if self._zeros is None or len(self._zeros) < n:
            self._zeros = memoryview(bytearray(n))
            self._pkt = bytearray(n + 32)
        pkt = self._pkt
        enc = Encoder(pkt, HEADER_SIZE)
        enc.raw(b"\xa2\x63off")  # {2 pairs, "off": ...}
        enc.head(0, off)
        enc.raw(b"\x64data")
        enc.head(2, n)
        enc.raw(self._zeros[:n])
        op, ver, _f, _len, group, seq, cmd = unpack_header(raw, 2)
        pack_header(pkt, 0, op, enc.pos - HEADER_SIZE, group, seq, cmd, ver)
        return memoryview(pkt)[:enc.pos]


def _packet(op, group, cmd, seq, body, version=SMP_V2):
    """An SMP packet (header + CBOR of ``body``, or ``body`` itself when it is bytes)."""
    raw = body if isinstance(body, (bytes, bytearray)) else dumps(body)
    pkt = bytearray(HEADER_SIZE + len(raw))
    pack_header(pkt, 0, op, len(raw), group, seq, cmd, version)
    pkt[HEADER_SIZE:] = raw
    return pkt


def _is_upload(raw):
    # raw: BE16 length + SMP header (+ start of the body)
    return raw[2] & 7 == OP_WRITE and raw[6] == 0 and raw[7] == GROUP_IMAGE and raw[9] == IMG_UPLOAD


def _cbor_head(raw, p):
    # (major, argument, next position) of the CBOR item head at p.
    b = raw[p]
    info = b & 31
    p += 1
    if info < 24:
        return b >> 5, info, p
    k = 1 << (info - 24)
    v = 0
    for i in range(p, p + k):
        v = (v << 8) | raw[i]
    return b >> 5, v, p + k


def _skim_upload(raw):
    """(off, data length) of an upload request from its first frame line."""
    p = 2 + HEADER_SIZE
    _m, npairs, p = _cbor_head(raw, p)
    off = n = 0
    for _ in range(npairs):
        _m, klen, p = _cbor_head(raw, p)
        key = bytes(raw[p:p + klen])
        p += klen
        major, v, p = _cbor_head(raw, p)
        if key == b"data":
            n = v
            break
        if key == b"off":
            off = v
        elif major in (2, 3):
            p += v
    return off, n
