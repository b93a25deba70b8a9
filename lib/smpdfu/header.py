"""The 8-byte SMP header (big-endian): op/version, flags, length, group, seq, id."""

import struct

from .compat import const
from .errors import ProtocolError
from .proto import SMP_V2

HEADER_SIZE = const(8)


def pack_header(buf, offset, op, length, group, seq, command, version=SMP_V2):
    """Write a header into ``buf`` at ``offset`` (no allocation)."""
    struct.pack_into(">BBHHBB", buf, offset, (version << 3) | op, 0, length, group, seq, command)


def unpack_header(buf, offset=0):
    """Return ``(op, version, flags, length, group, seq, command)`` of a header."""
    if len(buf) - offset < HEADER_SIZE:
        raise ProtocolError("short SMP header: %d bytes" % (len(buf) - offset))
    # Indexing, not struct.unpack_from: one tuple instead of two, and faster
    # on MicroPython (this runs for every response).
    o = offset
    b0 = buf[o]
    return (b0 & 7, (b0 >> 3) & 3, buf[o + 1], (buf[o + 2] << 8) | buf[o + 3], (buf[o + 4] << 8) | buf[o + 5],
            buf[o + 6], buf[o + 7])
