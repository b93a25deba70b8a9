"""The texts of errors, built only when one is raised.

On a board every long string constant of a module costs heap from its import
on, error or not: the messages of ``cbor``, ``messages`` and ``client`` live here, loaded
at the first failure.
"""

from .errors import ProtocolError, SMPTimeout
from .header import HEADER_SIZE

# Indexed by cbor's error numbers (_ROOM = 0, _BIG = 1, ...: the same order);
# ``%`` takes the value cbor passes with the error.
CBOR_MESSAGES = (
    "CBOR item of %d bytes does not fit in the %d-byte buffer",  # _ROOM
    "integer %d does not fit in 64 bits",  # _BIG
    "cannot encode %s as CBOR",  # _TYPE
    "CBOR nesting deeper than %d",  # _DEEP
    "CBOR data holds too many items (limit reached)",  # _ITEMS
    "CBOR data ends early",  # _EARLY
    "CBOR data ends inside an indefinite-length item",  # _INSIDE
    "CBOR string of %d bytes runs past the end",  # _PAST
    "%d trailing bytes after the CBOR item",  # _TRAILING
    "reserved or indefinite CBOR additional info %d",  # _RESERVED
    "CBOR integer too large for this build",  # _LONG
    "bad chunk 0x%02x in indefinite-length string",  # _CHUNK
    "invalid UTF-8 in CBOR text",  # _UTF8
    "unhashable CBOR map key",  # _KEY
    "CBOR tags are not supported (0x%02x)",  # _UNSUPPORTED, by the initial byte: 0xc0..0xdf
    "CBOR floats are not supported (0x%02x)",  # 0xf9..0xfb
    "unexpected CBOR break (0x%02x)",  # 0xff
    "unsupported CBOR simple value (0x%02x)",  # the rest
)


def cbor_message(why, x, at):
    """The text of CBOR error number ``why`` with its value ``x``, found at offset ``at``."""
    if why == 14:  # _UNSUPPORTED: which kind the byte x is
        why += 0 if x < 0xE0 else 1 if 0xF9 <= x <= 0xFB else 2 if x == 0xFF else 3
    m = CBOR_MESSAGES[why]
    if "%" in m:
        m = m % x
    return "%s at offset %d" % (m, at)


# The commands messages.py names by number (``group << 8 | cmd``).
_COMMANDS = {0x0006: "MCUmgr params", 0x0100: "image state", 0x0101: "image upload", 0x0106: "slot info"}


def describe(what):
    """``what`` for a message: a command's name (text), or the command as
    ``(group, cmd)`` or ``group << 8 | cmd``, named here: the names are loaded
    when an error is built, not before."""
    if isinstance(what, str):
        return what
    from .errcodes import command_name

    if isinstance(what, tuple):
        return command_name(*what)
    return _COMMANDS.get(what) or command_name(what >> 8, what & 0xFF)


def client_error(why, x, y=None):
    """The exception for :class:`~smpdfu.client.SMPClient`'s failure number ``why``
    (its ``_NOT_OUTSTANDING`` = 0, ...) with its values ``x``, ``y``. A request is
    given as client's packed int (op << 24 | group << 8 | cmd), a command as
    for :func:`describe`."""
    if why == 0:
        return ProtocolError("seq %d is not outstanding" % x)
    if why == 1:
        return SMPTimeout("no response to %s within %d ms" % (describe(x & 0xFFFFFF), y))
    if why == 2:
        return ProtocolError("response op %d %s does not match request op %d %s" % (
            x >> 24, describe(x & 0xFFFFFF), y >> 24, describe(y & 0xFFFFFF)))
    if why == 3:
        return ProtocolError("body of %d B, header says %d B" % (len(x) - HEADER_SIZE, y))
    if why == 4:
        return ProtocolError("answer to %s: %s" % (describe(x), y))
    return SMPTimeout("no echo answered within %d ms" % x)


def field_error(what, key, v, t, lo, hi, missing):
    """The :class:`ProtocolError` for field ``key`` of an answer to ``what``
    (see :func:`describe`): ``missing``, or ``v`` is not a ``t``
    (within ``lo..hi`` for an int; 1..64 bytes, a hash, for bytes)."""
    if missing:
        return ProtocolError("answer to %s has no %r field" % (describe(what), key))
    want = "map" if t is dict else "text" if t is str else t.__name__
    if t is bytes:
        want += " 1..64"
    elif t is int and (lo is not None or hi is not None):
        want += " %s..%s" % ("" if lo is None else lo, "" if hi is None else hi)
    r = repr(v)
    if len(r) > 40:
        r = r[:37] + "..."
    return ProtocolError("answer to %s: %r is %s, expected %s" % (describe(what), key, r, want))
