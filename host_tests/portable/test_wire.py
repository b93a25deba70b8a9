"""Wire layer (CRC, header, CBOR, serial framing) on any Python.

Runs under pytest on CPython and under the MicroPython runner.
"""

from smpdfu import cbor
from smpdfu.crc16 import crc16
from smpdfu.errcodes import SMP_V1
from smpdfu.errors import CBORError, FrameError
from smpdfu.framing import FrameDecoder, FrameEncoder
from smpdfu.header import pack_header
from smpdfu.proto import OP_WRITE, SMP_V2
from smpdfu.server import unpack_header

from _portable import dumps, raises


def _pattern(n, seed=1):
    b = bytearray(n)
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        b[i] = x >> 16 & 0xFF
    return bytes(b)


def test_crc16_xmodem_check_value():
    # The catalogue check value of CRC-16/XMODEM over "123456789".
    assert crc16(b"123456789") == 0x31C3
    assert crc16(b"") == 0
    # Incremental use gives the same result as one pass.
    assert crc16(b"56789", crc16(b"1234")) == 0x31C3


def test_crc16_over_packet_and_crc_is_zero():
    data = _pattern(200)
    c = crc16(data)
    assert crc16(data + bytes((c >> 8, c & 0xFF))) == 0


def test_header_roundtrip_v2_and_v1():
    buf = bytearray(8)
    pack_header(buf, 0, OP_WRITE, 300, 1, 255, 1)
    assert bytes(buf) == b"\x0a\x00\x01\x2c\x00\x01\xff\x01"
    assert unpack_header(buf) == (OP_WRITE, SMP_V2, 0, 300, 1, 255, 1)
    pack_header(buf, 0, 3, 5, 0, 7, 0, SMP_V1)
    assert buf[0] == 3
    assert unpack_header(buf)[1] == SMP_V1


def test_cbor_known_encodings():
    # RFC 8949 Appendix A examples.
    vectors = (
        (0, "00"), (23, "17"), (24, "1818"), (100, "1864"), (1000, "1903e8"),
        (1000000, "1a000f4240"), (1000000000000, "1b000000e8d4a51000"),
        (-1, "20"), (-100, "3863"), (-1000, "3903e7"),
        (False, "f4"), (True, "f5"), (None, "f6"),
        (b"", "40"), (b"\x01\x02\x03\x04", "4401020304"),
        ("", "60"), ("a", "6161"), ("IETF", "6449455446"), ("\u00fc", "62c3bc"),
        ([], "80"), ([1, [2, 3], [4, 5]], "8301820203820405"),
        ({}, "a0"),
    )
    for value, hexstr in vectors:
        assert dumps(value) == bytes.fromhex(hexstr), value
        assert cbor.loads(bytes.fromhex(hexstr)) == value


def test_cbor_indefinite_lengths():
    assert cbor.loads(bytes.fromhex("9f018202039f0405ffff")) == [1, [2, 3], [4, 5]]
    assert cbor.loads(bytes.fromhex("bf61610161629f0203ffff")) == {"a": 1, "b": [2, 3]}
    assert cbor.loads(bytes.fromhex("5f42010243030405ff")) == b"\x01\x02\x03\x04\x05"
    assert cbor.loads(bytes.fromhex("7f657374726561646d696e67ff")) == "streaming"


def test_cbor_rejects_what_smp_does_not_use():
    cases = (
        ("c11a514b67b0", "tags"),  # tag 1 (epoch time)
        ("f93c00", "floats"),  # half float 1.0
        ("fb3ff199999999999a", "floats"),
        ("f7", "simple"),  # undefined
        ("f0", "simple"),
        ("ff", "break"),
        ("1c", "reserved"),
        ("62c328", "UTF-8"),
        ("43010203ff", "trailing"),
        ("5801", "past the end"),
        ("58", "ends early"),
        ("a18001", "unhashable"),
        ("9f01", "ends inside"),
        ("5f6101ff", "bad chunk 0x61"),  # a text chunk in a byte string
        ("3bff", "ends early at offset 1"),
        ("81" * 17 + "00", "nesting deeper than 16"),
    )
    for hexstr, word in cases:
        err = raises(CBORError, cbor.loads, bytes.fromhex(hexstr))
        assert word in str(err), (hexstr, str(err))
    assert cbor.loads(bytes.fromhex("5f4101ff")) == b"\x01"  # the same string's one good chunk
    # the offset is where the bad item starts
    assert str(raises(CBORError, cbor.loads, bytes.fromhex("a2616101f7"))).endswith("(0xf7) at offset 4")


def test_cbor_encoder_errors_name_what_was_wrong():
    enc = cbor.Encoder(bytearray(8), 2)
    assert "of 9 bytes does not fit in the 8-byte buffer at offset 2" in str(raises(CBORError, enc.value, 1 << 40))
    assert "does not fit in 64 bits" in str(raises(CBORError, enc.value, 1 << 64))
    assert "cannot encode float" in str(raises(CBORError, enc.value, 1.5))
    nested = []
    for _ in range(20):
        nested = [nested]
    assert "nesting deeper than 16" in str(raises(CBORError, dumps, nested))


def test_cbor_decode_cost_is_capped_per_packet():
    # ~2 KB bodies that would build thousands of objects (70-200 KB of heap)
    hostile = (
        b"\x5f" + b"\x40" * 2000 + b"\xff",  # indefinite byte string of empty chunks
        b"\x7f" + b"\x60" * 2000 + b"\xff",  # the same for text
        b"\x99\x07\xd0" + b"\x80" * 2000,  # an array of 2000 empty arrays
        b"\x9f" + b"\xa0" * 2000 + b"\xff",  # indefinite array of empty maps
        b"\xb9\x03\xe8" + b"\x00\x80" * 1000,  # a map of 1000 pairs
    )
    for data in hostile:
        err = raises(CBORError, cbor.loads, data)
        assert "too many items" in str(err)
    # what SMP really sends stays far below the cap
    state = {"images": [{"image": i, "slot": s, "version": "1.2.3", "hash": bytes(32), "bootable": True,
                         "pending": False, "confirmed": True, "active": True, "permanent": False}
                        for i in range(4) for s in range(2)]}
    assert cbor.loads(dumps(state)) == state
    assert cbor.loads(b"\x99\x07\xd0" + b"\x80" * 2000, max_items=2001) == [[]] * 2000


def test_cbor_encoder_writes_memoryview_without_copying_elsewhere():
    buf = bytearray(64)
    enc = cbor.Encoder(buf)
    data = bytearray(b"abcdefgh")
    enc.head(5, 1)  # a map of one pair
    enc.raw(b"\x64data")
    enc.value(memoryview(data)[2:6])
    assert cbor.loads(buf[:enc.pos]) == {"data": b"cdef"}
    small = cbor.Encoder(bytearray(4))
    raises(CBORError, small.raw, b"12345")
    raises(CBORError, small.head, 2, 1 << 16)  # a 5-byte head
    assert small.pos == 0
    small.head(2, 3)  # the head of 3 bytes the caller copies in place
    assert small.pos == 1 and small.buf[0] == 0x43
    raises(CBORError, small.value, b"12345")


def test_cbor_loads_views_returns_memoryviews():
    raw = dumps({"data": b"xyz", "off": 5})
    out = cbor.loads(raw, views=True)
    assert isinstance(out["data"], memoryview)
    assert bytes(out["data"]) == b"xyz"


def test_frame_lines_respect_zephyr_limits():
    enc = FrameEncoder(2100)
    for n in (8, 50, 89, 90, 91, 92, 93, 186, 500, 2100):
        packet = _pattern(n, n)
        out = bytes(enc.encode(packet=packet))
        raw = n + 4  # length field, packet, CRC: base64 of it, 3 bytes of markers and newline per 93
        assert len(out) == (raw + 2) // 3 * 4 + 3 * ((raw + 92) // 93)
        lines = out.split(b"\n")
        assert lines[-1] == b""
        lines = lines[:-1]
        assert lines[0][:2] == b"\x06\x09"
        for line in lines[1:]:
            assert line[:2] == b"\x04\x14"
        for line in lines:
            assert len(line) + 1 <= 127  # Zephyr's MCUMGR_SERIAL_MAX_FRAME
            assert (len(line) - 2) % 4 == 0
        dec = FrameDecoder(2100)
        dec.feed(out)
        assert dec.next() == packet
        assert dec.next() is None


def test_decoder_skips_console_text_and_split_reads():
    enc = FrameEncoder(600)
    p1 = _pattern(300, 3)
    p2 = _pattern(20, 4)
    stream = (b"[00:00:01.000,000] <inf> app: booting\r\n" + bytes(enc.encode(packet=p1))
              + b"uart:~$ " + bytes(enc.encode(packet=p2)) + b"tail text")
    dec = FrameDecoder(600)
    for i in range(0, len(stream), 7):  # UART reads arrive in small pieces
        dec.feed(stream[i:i + 7])
    assert dec.next() == p1
    assert dec.next() == p2
    assert dec.next() is None
    assert dec.errors == 0


def test_decoder_finds_a_multi_line_frame_after_a_prompt_without_newline():
    # The first frame line is full (127 bytes): with the prompt before it the
    # line is longer than any frame line, and used to be dropped whole.
    enc = FrameEncoder(600)
    p1 = _pattern(300, 5)
    p2 = _pattern(200, 6)
    long_text = b"x" * 300  # console text longer than a line buffer, then a frame
    stream = (b"uart:~$ " + bytes(enc.encode(packet=p1)) + long_text + bytes(enc.encode(packet=p2))
              + b"uart:~$ ")
    for step in (1, 2, 7, 64, 127, 128, len(stream)):
        dec = FrameDecoder(600)
        for i in range(0, len(stream), step):
            dec.feed(stream[i:i + step])
        assert dec.next() == p1, step
        assert dec.next() == p2, step
        assert dec.next() is None
        assert dec.errors == 0
    # text too long for a line, then the frame in the next read (found by the fuzzer)
    for text in (long_text, b"y" * 128, b"z" * 127):
        dec = FrameDecoder(600)
        dec.feed(b"\n" + text)
        dec.feed(bytes(enc.encode(packet=p2)))
        assert dec.next() == p2, len(text)
    # a frame line too long (log text spliced in) breaks the frame: named with its length
    lines = bytes(enc.encode(packet=p1)).split(b"\n")
    for step in (1, 7, 1000):
        dec = FrameDecoder(600)
        stream = lines[0] + b"\n" + lines[1][:50] + b"x" * 60 + lines[1][50:] + b"\n"
        for i in range(0, len(stream), step):
            dec.feed(stream[i:i + step])
        assert str(raises(FrameError, dec.next)) == "bad frame (line>127, 186 bytes)", step


def test_decoder_names_bad_crc_base64_and_length():
    enc = FrameEncoder(300)
    good = bytes(enc.encode(packet=_pattern(40)))
    dec = FrameDecoder(300)
    # Bad CRC: flip one base64 character in the middle (still valid base64).
    i = 10
    bad = good[:i] + (b"B" if good[i:i + 1] != b"B" else b"C") + good[i + 1:]
    dec.feed(bad)
    assert str(raises(FrameError, dec.next)) == "bad frame (CRC, 40 bytes)"
    # Bad base64.
    dec.feed(b"\x06\x09AB$D\n")
    assert "base64" in str(raises(FrameError, dec.next))
    # A length field larger than the decoder accepts.
    dec2 = FrameDecoder(64)
    dec2.feed(bytes(FrameEncoder(300).encode(packet=_pattern(200))))
    assert str(raises(FrameError, dec2.next)) == "bad frame (length, 202 bytes)"  # M + CRC: 200 + 2
    # A frame cut short by a new one, which itself decodes.
    lines = bytes(FrameEncoder(300).encode(packet=_pattern(200))).split(b"\n")
    dec.feed(lines[0] + b"\n" + good)
    assert str(raises(FrameError, dec.next)) == "bad frame (cut short, 93 bytes)"  # after one full line
    assert dec.next() == _pattern(40)


def test_encoder_fills_packet_in_place():
    enc = FrameEncoder(128)
    pkt = enc.packet
    pack_header(pkt, 0, OP_WRITE, 4, 0, 9, 0)
    body = cbor.Encoder(pkt, 8)
    body.value({"d": "hi"})
    out = bytes(enc.encode(body.pos))
    dec = FrameDecoder(128)
    dec.feed(out)
    got = dec.next()
    assert unpack_header(got)[5] == 9
    assert cbor.loads(got[8:]) == {"d": "hi"}


def _decoded(stream, step):
    # Everything a decoder fed ``stream`` in ``step``-byte reads queues, errors as their messages.
    dec = FrameDecoder(600, 64)
    for i in range(0, len(stream), step):
        dec.feed(stream[i:i + step])
    out = []
    while True:
        try:
            p = dec.next()
        except FrameError as e:
            out.append(str(e))
            continue
        if p is None:
            return out
        out.append(p)


def test_whole_lines_decode_as_split_reads_do():
    # A line that arrives whole is decoded straight from the read (the usual
    # case); in 1- or 5-byte reads it goes through the line buffer. Both must
    # give the same packets and the same errors, in the same order.
    enc = FrameEncoder(600)
    p1 = bytes(enc.encode(packet=_pattern(300, 7)))  # three lines
    p2 = bytes(enc.encode(packet=_pattern(20, 8)))  # one line
    lines = p1.split(b"\n")
    crlf = p2.replace(b"\n", b"\r\n")
    cut = b"\n".join(lines[:2]) + b"\n"  # a frame cut short by the next one
    bad = p2[:12] + (b"A" if p2[12:13] != b"A" else b"B") + p2[13:]  # bad CRC
    marker_inside = b"\x06\x09" + lines[0][2:20] + p2  # a second start marker on the line
    stray_cont = b"\x04\x14QUJD\n"  # a continuation line outside any frame
    stream = (p2 + b"log line\n" + p1 + crlf + cut + p2 + bad + b"\n\n" + stray_cont + marker_inside
              + b"\x06\x09\n" + p1 + b"uart:~$ " + p2)
    whole = _decoded(stream, len(stream))
    assert whole.count(_pattern(300, 7)) == 2 and whole.count(_pattern(20, 8)) >= 5, whole
    assert any("cut short" in str(x) for x in whole) and any("CRC" in str(x) for x in whole), whole
    for step in (1, 5, 127, 128):
        assert _decoded(stream, step) == whole, step


def test_a_start_marker_inside_a_continuation_line_starts_a_new_frame():
    # Text spliced into a frame's last line with no newline, then a frame: the
    # open frame is cut short and the new one is taken (base64 never holds a
    # marker), in one read or in pieces.
    enc = FrameEncoder(600)
    p1 = bytes(enc.encode(packet=_pattern(200, 9)))  # three lines
    p2 = _pattern(20, 10)
    lines = p1.split(b"\n")
    stream = b"\n".join(lines[:2]) + b"\n" + lines[2][:8] + b"log\x06" + bytes(enc.encode(packet=p2))
    for step in (1, 3, len(stream)):
        got = _decoded(stream, step)
        assert len(got) == 2 and "cut short" in got[0] and got[1] == p2, (step, got)
