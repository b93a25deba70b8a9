"""Zephyr serial transport emulation (logic only): TX framing, line buffers, frame assembly."""

import binascii

from smp.packet import decode as smp_decode

from smpdfu.crc16 import crc16
from smpdfu.framing import FrameDecoder, FrameEncoder
from smpdfu_host.emulator.uart import FrameAssembler, LineBuffers, NetBufPool, split_lines, zephyr_frame


def payload(n):
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


def test_zephyr_frame_decodes_with_ours_and_smp():
    for n in list(range(8, 200)) + [300, 381, 500, 1000, 2040]:
        check_decodes(n)


def check_decodes(n):
    data = payload(n)
    framed = zephyr_frame(data)
    d = FrameDecoder(max_packet=4096)
    d.feed(framed)
    assert d.next() == data
    gen = smp_decode()
    next(gen)
    got = None
    for line in split_lines(framed):
        try:
            gen.send(line)
        except StopIteration as e:
            got = bytes(e.value)
            break
    assert got == data


def test_zephyr_frame_line_rules():
    for n in range(1, 400):
        check_line_rules(n)


def check_line_rules(n):
    data = payload(n)
    lines = split_lines(zephyr_frame(data))
    raws = []
    for i, ln in enumerate(lines):
        assert ln.startswith(b"\x06\x09" if i == 0 else b"\x04\x14") and ln.endswith(b"\n")
        assert len(ln) <= 127  # 2 marker bytes + 124 base64 characters (93 raw bytes) + newline
        text = ln[2:-1]
        assert len(text) % 4 == 0
        raws.append(binascii.a2b_base64(text))  # every line decodes on its own
    raw = b"".join(raws)
    assert raw == (n + 2).to_bytes(2, "big") + data + crc16(data).to_bytes(2, "big")
    if len(lines) > 1:
        # the CRC is never split: the last line has at least one data byte and the whole CRC
        assert len(raws[-1]) >= 3
    assert all(len(r) <= 93 for r in raws)
    # Every line but the last is as full as the CRC rule allows (max_input is per line).
    for r in raws[:-1]:
        assert len(r) >= 90


def test_continuation_lines_carry_93_raw_bytes():
    # 2 + 300 + 2 raw bytes: 93 (len + 91 data), then 93 data, 93 data, then 23 data + CRC.
    lines = split_lines(zephyr_frame(payload(300)))
    sizes = [len(binascii.a2b_base64(ln[2:-1])) for ln in lines]
    assert sizes == [93, 93, 93, 25], sizes


def test_crc_moves_a_byte_to_the_next_line():
    # first line: 2 length bytes + 91 data bytes fill 93 exactly -> CRC cannot follow
    n = 91
    lines = split_lines(zephyr_frame(payload(n)))
    assert len(lines) == 2
    assert len(binascii.a2b_base64(lines[0][2:-1])) == 90  # one data byte held back (3-byte groups)
    assert len(binascii.a2b_base64(lines[1][2:-1])) == 5
    # with room for the CRC it all goes in one line
    assert len(split_lines(zephyr_frame(payload(88)))) == 1


def test_line_buffers_drop_when_full_or_too_long():
    lb = LineBuffers(2, 128)
    assert lb.feed(b"a" * 10 + b"\n") == [b"a" * 10 + b"\n"]
    assert lb.feed(b"b\n") == [b"b\n"]
    assert lb.in_use == 2
    assert lb.feed(b"c\n") == []  # no buffer free: dropped
    assert lb.dropped_no_buffer == 1
    lb.release()
    assert lb.feed(b"x" * 127 + b"\n") == [b"x" * 127 + b"\n"]  # 128 with the newline fits
    lb.release()
    lb.release()
    assert lb.feed(b"y" * 128 + b"\n") == []  # too long
    assert lb.dropped_too_long == 1 and lb.in_use == 0
    # split across feeds
    assert lb.feed(b"par") == [] and lb.feed(b"tial\n") == [b"partial\n"]


def framed_lines(pkt):
    return split_lines(bytes(FrameEncoder(4096).encode(packet=pkt)))


def test_frame_assembler_ok_bad_crc_and_too_big():
    pool = NetBufPool(4)
    fa = FrameAssembler(384, pool)
    pkt = payload(300)
    out = [fa.process(ln) for ln in framed_lines(pkt)]
    assert out[-1] == pkt and out[:-1] == [None] * (len(out) - 1)
    assert pool.used == 1  # handed over with the packet
    bad = framed_lines(pkt)
    b = bytearray(bad[1])
    b[10] = ord("A") if b[10] != ord("A") else ord("B")
    bad[1] = bytes(b)
    assert [fa.process(ln) for ln in bad] == [None] * len(bad)
    assert fa.bad_frames == 1
    # 381 + 4 > 384: dropped silently; 380 fits exactly
    assert [fa.process(ln) for ln in framed_lines(payload(381))][-1] is None
    assert fa.too_big == 1
    assert [fa.process(ln) for ln in framed_lines(payload(380))][-1] == payload(380)
    assert fa.process(b"hello console\n") is None


def test_frame_assembler_needs_a_netbuf():
    pool = NetBufPool(1)
    assert pool.alloc()
    fa = FrameAssembler(384, pool)
    assert [fa.process(ln) for ln in framed_lines(payload(20))] == [None]
    assert fa.no_buffer == 1
