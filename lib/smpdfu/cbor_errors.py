"""The messages of the :class:`~smpdfu.errors.CBORError` that ``cbor`` raises.

Loaded only when one is raised: on a board every long string constant of a
module costs heap from its import on, error or not.
"""

# Indexed by cbor's error numbers (_ROOM = 0, _BIG = 1, ...: the same order);
# ``%`` takes the value cbor passes with the error.
MESSAGES = (
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
    "CBOR tags are not supported (0x%02x)",  # _TAG
    "CBOR floats are not supported (0x%02x)",  # _FLOAT
    "unsupported CBOR simple value (0x%02x)",  # _SIMPLE
    "unexpected CBOR break (0x%02x)",  # _BREAK
)


def message(why, x, at):
    """The text of error number ``why`` with its value ``x``, found at offset ``at``."""
    m = MESSAGES[why]
    if "%" in m:
        m = m % x
    return "%s at offset %d" % (m, at)
