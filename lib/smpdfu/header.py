"""The 8-byte SMP header (big-endian): op/version, flags, length, group, seq, id.

Written here (what a board that only sends requests holds); read by the
server side, :func:`smpdfu.server.unpack_header`.
"""

import struct

from .compat import const
from .proto import SMP_V2

HEADER_SIZE = const(8)


def pack_header(buf, offset, op, length, group, seq, command, version=SMP_V2):
    """Write a header into ``buf`` at ``offset`` (no allocation)."""
    struct.pack_into(">BBHHBB", buf, offset, (version << 3) | op, 0, length, group, seq, command)
