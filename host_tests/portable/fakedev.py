"""A tiny in-memory SMP device for portable client tests (CPython and MicroPython).

``FakeDevice`` *is* a UART (``write``/``read_available``/``close``): what the
client writes is decoded through the real serial framing and answered at
once, the answer waits to be read. No threads, so it runs on MicroPython.

It follows Zephyr's rules for the commands it knows (echo, reset, params,
os info, bootloader info, image state, upload, erase, slot info) and has
knobs to misbehave: drop requests, corrupt or delay answers, hold answers and
release them in another order, write console text, answer v1 headers.
Nothing here grows with the image size: uploaded data is only hashed.
"""

from smpdfu import cbor
from smpdfu.compat import sha256, ticks_diff, ticks_ms
from smpdfu.errors import FrameError
from smpdfu.framing import FrameDecoder, FrameEncoder
from smpdfu.header import HEADER_SIZE, SMP_V1, pack_header, unpack_header

IMAGE_MAGIC = b"\x3d\xb8\xf3\x96"  # 0x96f3b83d little-endian

# image group rc (v2 err form)
IMG_INVALID_OFFSET = 20
IMG_INVALID_LENGTH = 21
IMG_INVALID_HEADER = 22
IMG_INVALID_MAGIC = 23
IMG_INVALID_HASH = 24
IMG_HASH_NOT_FOUND = 8
IMG_NO_FREE_SLOT = 9
IMG_TOO_LARGE = 30
IMG_DATA_OVERRUN = 31
# MGMT_ERR (rc form)
EINVAL = 3
EBADSTATE = 6
ENOTSUP = 8


class _Err(Exception):
    def __init__(self, body):
        super().__init__()
        self.body = body


def image_header(size=0x1000, version=(1, 2, 3, 0)):
    """A 32-byte MCUboot-looking header (enough for the fake's checks)."""
    h = bytearray(32)
    h[0:4] = IMAGE_MAGIC
    h[8] = 32  # header size
    h[12:16] = size.to_bytes(4, "little")
    h[20] = version[0]
    h[21] = version[1]
    return h


class FakeDevice:
    """An SMP server behind a UART interface. See the module doc.

    Knobs (attributes; set them any time):

    - ``drop_requests``: silently drop the next N requests (lost on the link)
    - ``drop_upload_offsets``: list of upload offsets whose request is dropped once
    - ``corrupt_responses``: break the CRC of the next N answers
    - ``corrupt_upload_offsets``: list of upload offsets whose answer is broken once
    - ``delay_ms``: answers become readable this much later
    - ``hold``: keep answers until :meth:`release` is called
    - ``console``: text written before every answer (log lines)
    - ``errors``: {(group, cmd): body} answered instead of the real thing
    - ``v1``: answer with SMP v1 headers and rc-form errors
    - ``has_params``: False -> params answers ENOTSUP (an old server)
    - ``report_match``: answer ``match`` at the end of an upload
    - ``max_read``: largest piece one ``read_available`` returns (0: all)
    """

    def __init__(self, buf_size=384, buf_count=4, slot_size=1 << 20):
        self.buf_size = buf_size
        self.buf_count = buf_count
        self.slot_size = slot_size
        self._dec = FrameDecoder(max_packet=4096, max_queue=64)
        self._enc = FrameEncoder(2048)
        self._out = bytearray()
        self._delayed = []  # [(ready_at_ms, framed bytes)]
        self._held = []
        self.drop_requests = 0
        self.drop_upload_offsets = []
        self.corrupt_responses = 0
        self.corrupt_upload_offsets = []
        self.delay_ms = 0
        self.hold = False
        self.console = b""
        self.errors = {}
        self.v1 = False
        self.has_params = True
        self.report_match = True
        self.max_read = 0
        # what happened
        self.requests = 0
        self.bad_frames = 0
        self.oversize = 0  # requests dropped for not fitting buf_size
        self.max_request = 0  # largest packet (header + CBOR) received
        self.upload_requests = 0
        self.written = 0  # upload bytes accepted
        self.erases = 0
        self.resets = 0
        self.closed = False
        self.max_unread = 0  # most answers waiting unread at once (requests in flight)
        self._unread = 0
        self.first_chunk = None  # the last off-0 upload request, without data
        # upload state (RAM: lost on reset)
        self.upload_len = None
        self.upload_off = 0
        self.upload_sha = None
        self._hash = None
        self.last_upload_digest = None  # SHA-256 of the last completed upload
        self.running = {"image": 0, "slot": 0, "version": "1.0.0", "hash": b"\x11" * 32,
                        "bootable": True, "confirmed": True, "active": True}
        self.slot1 = None

    # ------------------------------------------------------------ UART side

    def write(self, buf):
        self._dec.feed(bytes(buf))
        while True:
            try:
                pkt = self._dec.next()
            except FrameError:
                self.bad_frames += 1  # Zephyr drops broken frames silently
                continue
            if pkt is None:
                break
            self._handle(pkt)
        return len(buf)

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
        self._out.extend(self._frame(op, group, cmd, seq, body, version, False))

    def inject_raw(self, data):
        """Put raw bytes on the line (garbage, partial frames)."""
        self._out.extend(data)

    def start_upload(self, length, sha, data_prefix):
        """Pretend an upload of ``length`` bytes with ``sha`` already holds ``data_prefix``."""
        self.upload_len = length
        self.upload_sha = bytes(sha)
        self._hash = sha256()
        self._hash.update(data_prefix)
        self.upload_off = len(data_prefix)

    # ------------------------------------------------------------ server

    def _frame(self, op, group, cmd, seq, body, version, corrupt):
        raw = cbor.dumps(body)
        pkt = bytearray(HEADER_SIZE + len(raw))
        pack_header(pkt, 0, op, len(raw), group, seq, cmd, version)
        pkt[HEADER_SIZE:] = raw
        framed = bytearray(self._enc.encode_packet(pkt))
        if corrupt:
            i = 10  # a base64 character inside the first line
            framed[i] = 0x41 if framed[i] != 0x41 else 0x42
        return framed

    def _handle(self, pkt):
        self.requests += 1
        n = len(pkt)
        if n > self.max_request:
            self.max_request = n
        if n > self.buf_size - 4:
            # length + packet + CRC must fit Zephyr's net_buf: dropped silently
            self.oversize += 1
            return
        if self.drop_requests:
            self.drop_requests -= 1
            return
        op, ver, _flags, length, group, seq, cmd = unpack_header(pkt)
        body = cbor.loads(memoryview(pkt)[HEADER_SIZE:HEADER_SIZE + length], True) if length else {}
        corrupt = False
        if group == 1 and cmd == 1:
            off = body.get("off")
            if off in self.drop_upload_offsets:
                self.drop_upload_offsets.remove(off)
                return
            if off in self.corrupt_upload_offsets:
                self.corrupt_upload_offsets.remove(off)
                corrupt = True
        version = SMP_V1 if self.v1 else ver
        try:
            err = self.errors.get((group, cmd))
            if err is not None:
                raise _Err(err)
            rsp = self._dispatch(op, group, cmd, body)
        except _Err as e:
            rsp = e.body
        if self.corrupt_responses:
            self.corrupt_responses -= 1
            corrupt = True
        framed = self._frame(op | 1, group, cmd, seq, rsp, version, corrupt)
        if self.console:
            self._queue(self.console)
        self._queue(framed)

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

    def _group_err(self, group, rc):
        if self.v1:
            return _Err({"rc": rc})
        return _Err({"err": {"group": group, "rc": rc}})

    def _dispatch(self, op, group, cmd, body):
        write = op == 2
        if group == 0:
            if cmd == 0 and write:
                return {"r": body.get("d", "")}
            if cmd == 5 and write:
                self.resets += 1
                self.upload_len = None  # upload state lives in RAM
                return {}
            if cmd == 6 and not write:
                if not self.has_params:
                    raise _Err({"rc": ENOTSUP})
                return {"buf_size": self.buf_size, "buf_count": self.buf_count}
            if cmd == 7 and not write:
                return {"output": "Zephyr fakedev 3.7.0"}
            if cmd == 8 and not write:
                if body.get("query") == "mode":
                    return {"mode": 1}
                return {"bootloader": "MCUboot"}
        elif group == 1:
            if cmd == 0:
                return self._state(write, body)
            if cmd == 1 and write:
                return self._upload(body)
            if cmd == 5 and write:
                if self.slot1 is not None and self.slot1.get("pending"):
                    raise _Err({"rc": EBADSTATE})
                self.slot1 = None
                self.erases += 1
                return {}
            if cmd == 6 and not write:
                return {"images": [{"image": 0, "slots": [
                    {"slot": 0, "size": self.slot_size},
                    {"slot": 1, "size": self.slot_size, "upload_image_id": 0}],
                    "max_image_size": self.slot_size - 0x1000}]}
        raise _Err({"rc": ENOTSUP})

    def _images(self):
        out = [self.running]
        if self.slot1 is not None:
            out.append(self.slot1)
        return {"images": out}

    def _state(self, write, body):
        if not write:
            return self._images()
        h = body.get("hash")
        confirm = body.get("confirm", False)
        if h is None:
            if not confirm:
                raise _Err({"rc": EINVAL})
            self.running["confirmed"] = True
            return self._images()
        h = bytes(h)
        if self.slot1 is not None and self.slot1["hash"] == h:
            self.slot1["pending"] = True
            if confirm:
                self.slot1["permanent"] = True
            return self._images()
        if self.running["hash"] == h:
            return self._images()
        raise self._group_err(1, IMG_HASH_NOT_FOUND)

    def _upload(self, body):
        self.upload_requests += 1
        off = body.get("off")
        data = body.get("data")
        if off is None:
            raise self._group_err(1, IMG_INVALID_OFFSET)
        if data is None:
            raise _Err({"rc": EINVAL})
        if off == 0:
            self.first_chunk = dict((k, bytes(body[k]) if isinstance(body[k], memoryview) else body[k]) for k in body if k != "data")
            if len(data) < 32:
                raise self._group_err(1, IMG_INVALID_HEADER)
            ln = body.get("len")
            if ln is None:
                raise self._group_err(1, IMG_INVALID_LENGTH)
            if bytes(data[0:4]) != IMAGE_MAGIC:
                raise self._group_err(1, IMG_INVALID_MAGIC)
            sha = body.get("sha")
            if sha is not None and len(sha) > 32:
                raise self._group_err(1, IMG_INVALID_HASH)
            if sha is not None and self.upload_len == ln and self.upload_sha == bytes(sha):
                return {"off": self.upload_off}  # resume: nothing written
            if ln > self.slot_size:
                raise self._group_err(1, IMG_TOO_LARGE)
            if self.slot1 is not None and self.slot1.get("pending"):
                raise self._group_err(1, IMG_NO_FREE_SLOT)
            self.erases += 1
            self.slot1 = None
            self.upload_len = ln
            self.upload_sha = bytes(sha) if sha is not None else None
            self.upload_off = 0
            self._hash = sha256()
        elif self.upload_len is None:
            raise self._group_err(1, IMG_INVALID_OFFSET)
        if off != self.upload_off:
            return {"off": self.upload_off}  # dropped; the client jumps here
        if off + len(data) > self.upload_len:
            raise self._group_err(1, IMG_DATA_OVERRUN)
        self._hash.update(data)
        self.upload_off += len(data)
        self.written += len(data)
        rsp = {"off": self.upload_off}
        if self.upload_off == self.upload_len:
            digest = self._hash.digest()
            self.last_upload_digest = digest
            if self.report_match and self.upload_sha is not None:
                rsp["match"] = digest[:len(self.upload_sha)] == self.upload_sha
            self.slot1 = {"image": 0, "slot": 1, "version": "2.0.0", "hash": digest, "bootable": True}
            self.upload_len = None
            self._hash = None
        return rsp


def _cbor_head(raw, p):
    # (major, argument, next position) of the CBOR item head at p.
    b = raw[p]
    major = b >> 5
    info = b & 31
    p += 1
    if info < 24:
        return major, info, p
    n = 1 << (info - 24)
    v = 0
    for i in range(p, p + n):
        v = (v << 8) | raw[i]
    return major, v, p + n


class SkimDevice:
    """A cheap stand-in device that accepts every upload chunk in order.

    It decodes only the first line of each frame (header, ``off`` and the
    data length are there) and skips the rest: no CRC check, no hash. For
    measuring the *client* on the WebAssembly build, whose pure-Python
    ``binascii`` makes decoding whole frames ten times dearer than encoding.
    """

    def __init__(self):
        self._enc = FrameEncoder(64)
        self._pend = bytearray()
        self._out = bytearray()
        self._skip_lines = 0
        self.requests = 0
        self.written = 0
        self.expect = 0

    def write(self, buf):
        from binascii import a2b_base64

        self._pend.extend(buf)
        while True:
            nl = self._pend.find(b"\n")
            if nl < 0:
                return len(buf)
            if self._skip_lines:
                self._skip_lines -= 1
            elif self._pend[0] == 6 and self._pend[1] == 9:
                raw = a2b_base64(bytes(self._pend[2:nl]))
                total = ((raw[0] << 8) | raw[1]) + 2
                self._skip_lines = (total + 92) // 93 - 1
                self._answer(raw)
            self._pend[:nl + 1] = b""

    def _answer(self, raw):
        self.requests += 1
        op, ver, _f, _len, group, seq, cmd = unpack_header(raw, 2)
        p = 10
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
        if off == self.expect:
            self.expect = off + n
            self.written += n
        rsp = cbor.dumps({"off": self.expect})
        pkt = bytearray(HEADER_SIZE + len(rsp))
        pack_header(pkt, 0, op | 1, len(rsp), group, seq, cmd, ver)
        pkt[HEADER_SIZE:] = rsp
        self._out.extend(self._enc.encode_packet(pkt))

    def read_available(self):
        if not self._out:
            return None
        data = bytes(self._out)
        self._out[:] = b""
        return data

    def close(self):
        pass
