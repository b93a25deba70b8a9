"""An SMP (MCUmgr) server core that behaves like Zephyr's ``smp.c``.

The server takes whole SMP packets (header + CBOR, already reassembled by a
transport) and returns the response packets. Command groups are plugged in
with :meth:`SMPServer.register`; see ``server_os.py`` and ``server_image.py``.

What it reproduces from Zephyr (``subsys/mgmt/mcumgr/smp/src/smp.c``):

- a packet may hold several requests, processed in order; the first error
  stops the packet;
- the response carries the request's sequence number, group, command and SMP
  version (v1 or v2);
- protocol-level failures (unknown command: ENOTSUP, undecodable request:
  EINVAL, response too big: EMSGSIZE, truncated request: ECORRUPT) answer
  ``{"rc": n}``;
- group errors answer ``{"err": {"group", "rc"}}`` to v2 requests and the
  translated ``{"rc": n}`` (the group's MGMT_ERR mapping) to v1 requests.

Options imitate other server builds: ``v1_only`` (every response has a v1
header and errors use the rc form; upload/erase add ``"rc": 0``: Zephyr's
``CONFIG_MCUMGR_SMP_LEGACY_RC_BEHAVIOUR`` answering as SMP v1, not a model of
any one older release) and
``rc_errors`` (rc-form errors even to v2 requests).

Handlers are ``fn(req)`` returning a dict (the response map) and raising
:class:`MgmtStatus` or :class:`GroupStatus` to fail. ``req.body`` is decoded
with ``cbor.loads(views=True)``: byte strings are memoryviews into the packet.
"""

from .cbor import Encoder, loads
from .errors import CBORError, ProtocolError
from .header import HEADER_SIZE, pack_header
from .errcodes import (MGMT_ERR_ECORRUPT, MGMT_ERR_EINVAL, MGMT_ERR_EMSGSIZE, MGMT_ERR_ENOTSUP,
                       MGMT_ERR_EUNKNOWN, MGMT_ERR_UNSUPPORTED_TOO_NEW, SMP_V1)
from .proto import OP_READ, OP_WRITE, SMP_V2



def unpack_header(buf, offset=0):
    """Return ``(op, version, flags, length, group, seq, command)`` of the SMP header at ``offset``."""
    if len(buf) - offset < HEADER_SIZE:
        raise ProtocolError("short SMP header: %d bytes" % (len(buf) - offset))
    # Indexing, not struct.unpack_from: one tuple instead of two, and faster
    # on MicroPython (this runs for every request).
    o = offset
    b0 = buf[o]
    return (b0 & 7, (b0 >> 3) & 3, buf[o + 1], (buf[o + 2] << 8) | buf[o + 3], (buf[o + 4] << 8) | buf[o + 5],
            buf[o + 6], buf[o + 7])

class MgmtStatus(Exception):
    """A handler result that is a protocol-level MGMT_ERR code (rc form)."""

    def __init__(self, rc):
        super().__init__(rc)
        self.rc = rc


class GroupStatus(Exception):
    """A group error (``smp_add_cmd_err``): ``err {group, rc}`` under v2."""

    def __init__(self, group, rc):
        super().__init__(group, rc)
        self.group = group
        self.rc = rc


class Request:
    """One decoded request: ``op``, ``version``, ``group``, ``seq``, ``command``, ``body``, ``server``."""

    def __init__(self, server, op, version, group, seq, command, body):
        self.server = server
        self.op = op
        self.version = version
        self.group = group
        self.seq = seq
        self.command = command
        self.body = body


def field(body, key, kind, default=None):
    """``body[key]`` checked against ``kind`` ("uint", "bool", "text", "bytes").

    Missing keys give ``default``; a value of the wrong type raises
    ``MgmtStatus(MGMT_ERR_EINVAL)``, as zcbor_map_decode_bulk failing does in Zephyr.
    """
    if key not in body:
        return default
    v = body[key]
    if kind == "uint":
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
    elif kind == "bool":
        ok = v is True or v is False
    elif kind == "text":
        ok = isinstance(v, str)
    else:
        ok = isinstance(v, (bytes, bytearray, memoryview))
    if not ok:
        raise MgmtStatus(MGMT_ERR_EINVAL)
    return v


class SMPServer:
    """Dispatches SMP requests to registered groups and encodes responses.

    ``buf_size`` / ``buf_count``: the transport's net_buf size and count
    (CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE/COUNT, defaults 384 and 4); a response
    (header + CBOR) must fit ``buf_size``. ``v1_only``: SMP v1 answers with
    the legacy rc behaviour (see the module doc). ``rc_errors``: always use the rc error form.
    """

    def __init__(self, buf_size=384, buf_count=4, v1_only=False, rc_errors=False):
        self.buf_size = buf_size
        self.buf_count = buf_count
        self.v1_only = v1_only
        self.rc_errors = rc_errors or v1_only
        self.legacy_rc = v1_only  # CONFIG_MCUMGR_SMP_LEGACY_RC_BEHAVIOUR
        self.groups = {}
        self._rsp = bytearray(buf_size)
        self.requests = 0  # requests handled, for diagnostics

    def register(self, group):
        """Add a group object (attributes ``group_id``, ``handlers`` = {cmd: (read_fn, write_fn)}, ``translate(rc)``)."""
        self.groups[group.group_id] = group

    def process(self, packet):
        """Handle every request in ``packet``; return the list of response packets (bytes)."""
        mv = memoryview(packet)
        n = len(mv)
        pos = 0
        out = []
        while pos < n:
            if n - pos < HEADER_SIZE:
                break  # MGMT_ERR_ECORRUPT without a valid header: nothing is sent
            op, version, _flags, length, group, seq, cmd = unpack_header(mv, pos)
            pos += HEADER_SIZE
            if n - pos < length:
                out.append(self.error_packet(op, version, group, seq, cmd, MGMT_ERR_ECORRUPT))
                break
            body = mv[pos:pos + length]
            pos += length
            rsp, failed = self._one(op, version, group, seq, cmd, body)
            out.append(rsp)
            if failed:
                break
        return out

    def _one(self, op, version, group, seq, cmd, body):
        self.requests += 1
        if op != OP_READ and op != OP_WRITE:
            return self.error_packet(op, version, group, seq, cmd, MGMT_ERR_ENOTSUP), True
        if version > SMP_V2:
            return self.error_packet(op, version, group, seq, cmd, MGMT_ERR_UNSUPPORTED_TOO_NEW), True
        g = self.groups.get(group)
        fns = g.handlers.get(cmd) if g is not None else None
        fn = None
        if fns is not None:
            fn = fns[0] if op == OP_READ else fns[1]
        if fn is None:
            return self.error_packet(op, version, group, seq, cmd, MGMT_ERR_ENOTSUP), True
        try:
            req_body = loads(body, True) if len(body) else {}
        except CBORError:
            req_body = None
        if not isinstance(req_body, dict):
            return self.error_packet(op, version, group, seq, cmd, MGMT_ERR_EINVAL), True
        req = Request(self, op, version, group, seq, cmd, req_body)
        try:
            rsp = fn(req)
        except MgmtStatus as e:
            return self.error_packet(op, version, group, seq, cmd, e.rc), True
        except GroupStatus as e:
            if version == SMP_V1 or self.rc_errors:
                gg = self.groups.get(e.group)
                rc = gg.translate(e.rc) if gg is not None else MGMT_ERR_EUNKNOWN
                return self.error_packet(op, version, group, seq, cmd, rc), True
            rsp = {"err": {"group": e.group, "rc": e.rc}}
        try:
            return self._encode(op, version, group, seq, cmd, rsp), False
        except CBORError:
            return self.error_packet(op, version, group, seq, cmd, MGMT_ERR_EMSGSIZE), True

    def _encode(self, op, version, group, seq, cmd, rsp):
        buf = self._rsp
        enc = Encoder(buf, HEADER_SIZE)
        enc.value(rsp if rsp is not None else {})
        if self.v1_only:
            version = SMP_V1
        pack_header(buf, 0, op | 1, enc.pos - HEADER_SIZE, group, seq, cmd, version)
        return bytes(buf[:enc.pos])

    def error_packet(self, op, version, group, seq, cmd, rc):
        """The response packet carrying MGMT_ERR ``rc`` (rc form) to a request with this header."""
        return self._encode(OP_READ if op == OP_READ else OP_WRITE, version if version <= SMP_V2 else SMP_V2, group, seq, cmd, {"rc": rc})
