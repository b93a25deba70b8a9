"""An SMP (MCUmgr) client: requests, responses matched by sequence number, commands.

Only what a board's update sends is here (each method costs heap on a board);
the CLI's other commands are functions in :mod:`smpdfu.commands`.
"""

# Modules rather than their names where several are used: each imported name
# is an entry in this module's globals, which a board holds in RAM.
from . import cbor, compat, errors, messages, proto
from .compat import const
from .header import HEADER_SIZE, pack_header

# Failures by number: errtext.client_error builds the exception (its text is
# loaded on a failure only, as for cbor's).
_NOT_OUTSTANDING = const(0)
_NO_RESPONSE = const(1)
_MISMATCH = const(2)
_LENGTH = const(3)
_BAD_ANSWER = const(4)
_NOT_READY = const(5)


class SMPClient:
    """Talks SMP to one device over a transport (e.g. :class:`~smpdfu.transport.SerialTransport`).

    Requests go out with SMP v2 headers; v1 answers are accepted. Each request
    gets a sequence number (0..255) and responses are matched by it, so
    several requests can be in flight (:meth:`send_request`, or :meth:`encoder`
    and :meth:`send_encoded`; then :meth:`wait`): responses for other outstanding requests are kept until
    asked for, stray ones are dropped.

    ``timeout_ms`` is the default time to wait for a response. ``pending``
    holds the seqs sent and not taken (or cancelled) yet: each maps to an int
    (the answer's op, group and command packed) until its answer arrives, then
    to the answer's packet. ``stray`` counts dropped responses.
    """

    # Responses dropped because nobody waited for them: the class's 0 until the
    # first, so that a client's attribute table holds 6 names (a 96-byte table, not 128).
    stray = 0

    def __init__(self, transport, timeout_ms=3000):
        self.transport = transport
        self.timeout_ms = timeout_ms
        self._seq = 0
        # seq -> response op << 24 | group << 8 | cmd, then its packet (one dict:
        # fewer objects and attributes than one for the requests, one for the answers)
        self.pending = {}
        self._enc = cbor.Encoder(transport.packet, HEADER_SIZE)
        self._heard = False  # the device answered once (or the first request was retried)

    # ------------------------------------------------------------ requests

    def encoder(self):
        """The :class:`~smpdfu.cbor.Encoder` for the next request's body.

        It writes straight into the transport's packet buffer after the
        header. Write the body, then call :meth:`send_encoded`.
        """
        enc = self._enc
        enc.buf = self.transport.packet  # taken anew: fit() and request_limit() may resize it
        enc.pos = HEADER_SIZE
        return enc

    def send_encoded(self, op, group, cmd):
        """Send the body written through :meth:`encoder` without waiting; return
        its seq, for :meth:`wait` (or :meth:`poll` and :meth:`take`)."""
        enc = self._enc
        seq = self._seq
        self._seq = (seq + 1) & 0xFF
        pack_header(enc.buf, 0, op, enc.pos - HEADER_SIZE, group, seq, cmd)
        # Registered before sending: a synchronous link may answer at once.
        self.pending[seq] = (op | 1) << 24 | group << 8 | cmd  # what poll() checks: no tuple per request
        try:
            self.transport.send(enc.pos)
        except Exception:
            del self.pending[seq]
            raise
        return seq

    def send_request(self, op, group, cmd, body=None):
        """Send a request with ``body`` (a dict, None for ``{}``) without
        waiting; return its seq for :meth:`wait`: several may be in flight."""
        enc = self.encoder()
        if body is None:
            enc.head(5, 0)  # {} without making one (a map head of 0 pairs)
        else:
            enc.value(body)
        return self.send_encoded(op, group, cmd)

    def cancel(self, seq):
        """Stop waiting for ``seq``: its response will be ignored if it comes."""
        self.pending.pop(seq, None)

    def poll(self):
        """Take one received packet, if any, into ``pending`` (for :meth:`take`).

        Returns the seq of a response to an outstanding request, or None.
        Raises :class:`~smpdfu.errors.FrameError` for a broken frame.
        """
        pkt = self.transport.recv()
        if pkt is None:
            return None
        seq = pkt[6] if len(pkt) >= HEADER_SIZE else -1
        expect = self.pending.get(seq)
        if type(expect) is not int:  # no request waits for it (or it was answered already)
            self.stray += 1
            return None
        # One int compare for the usual answer: op | group | cmd packed as in send_encoded.
        got = (pkt[0] & 7) << 24 | pkt[4] << 16 | pkt[5] << 8 | pkt[7]
        self.pending[seq] = pkt if got == expect else (got, expect)  # take() raises the mismatch
        return seq

    def wait(self, seq, timeout_ms=None):
        """Wait for the response to ``seq``; return its body (a dict).

        Raises the device's error as an exception (:class:`~smpdfu.errors.DeviceError`,
        :class:`~smpdfu.errors.ImageError`...), :class:`~smpdfu.errors.SMPTimeout`,
        :class:`~smpdfu.errors.FrameError` for a broken response frame (the
        request is then forgotten), or :class:`~smpdfu.errors.ProtocolError`.
        """
        expect = self.pending.get(seq)
        if expect is None:
            from .errtext import client_error

            raise client_error(_NOT_OUTSTANDING, seq)
        if timeout_ms is None:
            timeout_ms = self.timeout_ms
        pending = self.pending
        t0 = compat.ticks_ms()
        while type(pending.get(seq)) is int:  # not answered yet
            try:
                got = self.poll()
            except errors.FrameError:
                self.cancel(seq)
                raise
            if got is None:  # nothing arrived: seq is still not answered
                left = timeout_ms - compat.ticks_diff(compat.ticks_ms(), t0)
                if left <= 0:
                    self.cancel(seq)
                    from .errtext import client_error

                    raise client_error(_NO_RESPONSE, expect, timeout_ms)
                self.transport.wait(left if left < 50 else 50)
        return self.decode(self.take(seq))

    def take(self, seq):
        """The raw response packet to ``seq`` (bytes: header + CBOR) once it
        has arrived, else None. Its header is checked against the request
        (a :class:`~smpdfu.errors.ProtocolError` otherwise) and the request is
        done; :meth:`decode` gives the body. For a caller that reads the
        usual answer itself (an upload chunk's) and decodes only the others.
        """
        pending = self.pending
        pkt = pending.get(seq)
        if pkt is None or type(pkt) is int:
            return None  # not outstanding, or not answered yet
        del pending[seq]
        self._heard = True
        if type(pkt) is tuple:  # (got, expect): poll() found the header does not match
            from .errtext import client_error

            raise client_error(_MISMATCH, pkt[0], pkt[1])
        length = pkt[2] << 8 | pkt[3]
        if length != len(pkt) - HEADER_SIZE:
            from .errtext import client_error

            raise client_error(_LENGTH, pkt, length)
        return pkt

    def decode(self, pkt):
        """The body (a dict) of a response packet from :meth:`take`; the device's
        error is raised as an exception, as by :meth:`wait`."""
        what = pkt[4] << 16 | pkt[5] << 8 | pkt[7]  # group << 8 | cmd: named only in a message
        try:
            body = cbor.loads(memoryview(pkt)[HEADER_SIZE:]) if len(pkt) > HEADER_SIZE else {}
        except errors.ProtocolError as e:  # errors.CBORError
            from .errtext import client_error

            raise client_error(_BAD_ANSWER, what, e)
        if type(body) is dict and "err" not in body:
            rc = body.get("rc", 0)
            if type(rc) is int and not rc:
                return body  # the usual answer (rc 0 or none): the error names are not loaded
        from .errcodes import error_from_response

        err = error_from_response(body, what >> 8, what)
        if err is not None:
            raise err
        return body

    def request(self, op, group, cmd, body=None, timeout_ms=None):
        """Send a request (see :meth:`send_request`) and wait for its response body (dict).

        The first request on a link that has never answered is sent again
        once after a timeout (after :meth:`transport.reset`): a stray byte
        on the device's line, or its boot, may have eaten the first one.
        """
        while True:
            try:
                return self.wait(self.send_request(op, group, cmd, body), timeout_ms)
            except errors.SMPTimeout:
                if self._heard:
                    raise
                self._heard = True  # once per link
                self.transport.reset()

    # ------------------------------------------------------------ OS group

    def echo(self, text, timeout_ms=None):
        """Echo ``text`` through the device; return what came back."""
        rsp = self.request(proto.OP_WRITE, proto.GROUP_OS, proto.OS_ECHO, {"d": text}, timeout_ms)
        return messages.field(rsp, "r", "echo", str)

    def reset(self, force=False, settle_ms=300, reconnect_ms=5000):
        """Ask the device to reset; returns once it has gone down.

        The device answers first and resets a little later (Zephyr's
        ``CONFIG_MCUMGR_GRPOS_RESET_MS``, 250 ms by default), so this waits
        ``settle_ms`` after the answer: a :meth:`wait_until_ready` right after
        then talks to the rebooted device, not to the old one.
        ``force`` overrides a refusal (EBUSY). Over a transport that has
        ``reconnect`` (BLE) it waits for the link to drop instead and tries to
        reconnect within ``reconnect_ms``.
        """
        self.request(proto.OP_WRITE, proto.GROUP_OS, proto.OS_RESET, {"force": True} if force else None)
        reconnect = getattr(self.transport, "reconnect", None)
        if reconnect is not None:
            # A link that drops with the reset (BLE): wait for the drop, then
            # connect to the rebooted device. If it is not back yet, the next
            # request (or wait_until_ready) tries again.
            try:
                reconnect(reconnect_ms)
            except errors.LinkError:
                pass
        elif settle_ms:
            compat.sleep_ms(settle_ms)

    def params(self):
        """The server's buffer size and count as :class:`~smpdfu.messages.McuMgrParams`."""
        p = messages.McuMgrParams(self.request(proto.OP_READ, proto.GROUP_OS, proto.OS_PARAMS))
        fit = getattr(self.transport, "fit", None)  # optional in the transport contract
        if fit is not None:
            self._enc.buf = None  # let the old packet buffer go before a new one is made
            fit(p.buf_size)
        return p

    def wait_until_ready(self, timeout_ms=10000, attempt_ms=500):
        """Echo until the device answers (e.g. after a reset); drop garbage meanwhile.

        Raises :class:`~smpdfu.errors.SMPTimeout` after ``timeout_ms``.
        """
        t0 = compat.ticks_ms()
        while True:
            self.transport.reset()
            self.pending.clear()
            try:
                if self.echo("ready", attempt_ms) == "ready":
                    return
            except (errors.SMPTimeout, errors.FrameError, errors.ProtocolError, errors.LinkError):
                pass  # LinkError: a BLE device still booting is not found yet
            if compat.ticks_diff(compat.ticks_ms(), t0) >= timeout_ms:
                from .errtext import client_error

                raise client_error(_NOT_READY, timeout_ms)

    # ------------------------------------------------------------ image group

    def image_state(self, body=None):
        """The image state list: a list of :class:`~smpdfu.messages.ImageSlot`
        (after setting it with ``body``, as :meth:`image_test` does)."""
        op = proto.OP_READ if body is None else proto.OP_WRITE
        return messages.ImageSlot.list_from_response(self.request(op, proto.GROUP_IMAGE, proto.IMG_STATE, body))

    def image_test(self, hash):
        """Mark the image with ``hash`` (bytes) for a test boot; return the new state list."""
        return self.image_state({"hash": hash, "confirm": False})

    def image_confirm(self, hash=None):
        """Confirm the running image (no ``hash``), or make ``hash`` (bytes) permanent;
        return the state list."""
        return self.image_state({"confirm": True} if hash is None else {"hash": hash, "confirm": True})

    def slot_info(self):
        """Slot sizes: the ``images`` list of the slot info response (type-checked dicts,
        see :func:`~smpdfu.messages.slot_info_from_response`)."""
        return messages.slot_info_from_response(self.request(proto.OP_READ, proto.GROUP_IMAGE, proto.IMG_SLOT_INFO))

    def upload(self, stream, *args, **kwargs):
        """Upload an image from ``stream`` (anything with ``readinto``).

        See :func:`smpdfu.upload.upload` for the options; returns an
        :class:`~smpdfu.messages.UploadResult`.
        """
        from .upload import upload

        return upload(self, stream, *args, **kwargs)
