"""A device that answers well-framed bodies with wrong types (issue 9, items 1-3).

Every field of every answer is type-checked where it is read: anything wrong
is a ProtocolError naming the field and the command, never a TypeError, an
AttributeError, a huge allocation or a truthy guess. Portable.
"""

import io

from smpdfu import commands
from smpdfu.client import SMPClient
from smpdfu.errors import CBORError, MgmtError, ProtocolError
from smpdfu.proto import GROUP_IMAGE, GROUP_OS
from smpdfu.transport import SerialTransport
from smpdfu.updater import Updater

from _portable import dumps, raises
from mcuimg import build
from smpdev import SMPDevice


def _client():
    dev = SMPDevice()
    return dev, SMPClient(SerialTransport(dev), timeout_ms=300)


def _protocol_error(fn, *args, **kw):
    e = raises(ProtocolError, fn, *args, **kw)
    return str(e)


def test_rc_of_wrong_type_names_the_field():
    dev, c = _client()
    dev.errors[(GROUP_OS, 0)] = {"rc": "x"}
    msg = _protocol_error(c.echo, "hi")
    assert "'rc'" in msg and "group 0 (OS) command 0" in msg and "'x'" in msg
    dev.errors[(GROUP_OS, 0)] = {"rc": True}  # a bool is not an error code
    assert "'rc'" in _protocol_error(c.echo, "hi")
    dev.errors[(GROUP_OS, 0)] = {"err": [1, 2]}
    assert "'err'" in _protocol_error(c.echo, "hi")
    dev.errors[(GROUP_OS, 0)] = {"err": {"group": "os", "rc": 3}}
    assert "'group'" in _protocol_error(c.echo, "hi")
    dev.errors[(GROUP_OS, 0)] = {"rc": 3, "rsn": 7}
    assert "'rsn'" in _protocol_error(c.echo, "hi")
    dev.errors[(GROUP_OS, 0)] = {"rc": 3, "rsn": "why"}
    assert "why" in str(raises(MgmtError, c.echo, "hi"))


def test_an_answer_that_is_not_cbor_names_the_command():
    from smpdfu.framing import FrameEncoder
    from smpdfu.header import pack_header
    from smpdfu.proto import OP_WRITE

    dev, c = _client()
    assert c.echo("heard") == "heard"
    # the device's own answer is lost; in its place a well-framed answer whose
    # body is a lone CBOR break byte
    pkt = bytearray(9)
    pack_header(pkt, 0, OP_WRITE | 1, 1, GROUP_OS, c._seq, 0)
    pkt[8] = 0xFF
    dev.drop_requests = 1
    dev.inject_raw(bytes(FrameEncoder(64).encode(packet=pkt)))
    e = raises(CBORError, c.echo, "hi")
    assert str(e).startswith("answer to group 0 (OS) command 0: unexpected CBOR break")


def test_image_state_of_wrong_types():
    dev, c = _client()
    for body, field in (({"images": [1]}, "images[]"),
                        ({"images": 5}, "images"),
                        ({"images": [{"slot": "1"}]}, "slot"),
                        ({"images": [{"slot": 1, "version": 3}]}, "version"),
                        ({"images": [{"slot": 1, "active": "false"}]}, "active"),
                        ({"images": [{"slot": 1, "confirmed": 1}]}, "confirmed"),
                        ({}, "images")):
        dev.errors[(GROUP_IMAGE, 0)] = body
        msg = _protocol_error(c.image_state)
        assert repr(field) in msg and "image state" in msg, msg


def test_hash_of_wrong_type_allocates_nothing():
    dev, c = _client()
    # 2**32 would be bytes(4 GiB); 7 would be seven zero bytes
    for h in (1 << 32, 7, "abcd", b"", b"x" * 65):
        dev.errors[(GROUP_IMAGE, 0)] = {"images": [{"slot": 1, "hash": h}]}
        assert "'hash'" in _protocol_error(c.image_state)


def test_params_of_wrong_type():
    dev, c = _client()
    for body, field in (({"buf_size": "x"}, "buf_size"), ({"buf_size": True}, "buf_size"),
                        ({"buf_size": -5}, "buf_size"), ({"buf_size": 512, "buf_count": 0}, "buf_count"),
                        ({"buf_count": 4}, "buf_size")):
        dev.errors[(GROUP_OS, 6)] = body
        msg = _protocol_error(c.params)
        assert repr(field) in msg and "MCUmgr params" in msg


def test_text_answers_of_wrong_type():
    dev, c = _client()
    dev.errors[(GROUP_OS, 0)] = {"r": b"bytes"}
    assert "'r'" in _protocol_error(c.echo, "hi")
    dev.errors[(GROUP_OS, 7)] = {"output": 1}
    assert "'output'" in _protocol_error(commands.os_info, c)
    dev.errors[(GROUP_OS, 8)] = {"bootloader": 1}
    assert "'bootloader'" in _protocol_error(commands.bootloader_info, c)
    dev.errors[(GROUP_OS, 8)] = {"mode": "swap"}
    assert "'mode'" in _protocol_error(commands.bootloader_info, c, "mode")
    dev.errors[(GROUP_OS, 8)] = {"mode": 1, "no-downgrade": "no"}
    assert "'no-downgrade'" in _protocol_error(commands.bootloader_info, c, "mode")


def test_slot_info_of_wrong_types():
    dev, c = _client()
    for body, field in (({"images": [{"image": 0, "slots": [{"slot": 0, "size": "big"}]}]}, "size"),
                        ({"images": [{"image": 0, "slots": 3}]}, "slots"),
                        ({"images": [{"image": 0, "slots": [], "max_image_size": []}]}, "max_image_size")):
        dev.errors[(GROUP_IMAGE, 6)] = body
        assert repr(field) in _protocol_error(c.slot_info)
    dev.errors[(GROUP_IMAGE, 6)] = {"images": [{"image": 0, "slots": [{"slot": 1, "size": 4096}],
                                                "max_image_size": 4000}]}
    assert c.slot_info() == [{"image": 0, "slots": [{"slot": 1, "size": 4096}], "max_image_size": 4000}]


def test_upload_answers_are_not_truthy():
    dev, c = _client()
    data = bytes(range(256)) * 8
    for body, field in (({"off": True}, "off"), ({"off": "0"}, "off"), ({"off": 1 << 40}, "off"),
                        ({"off": len(data), "match": "no"}, "match"),
                        ({"off": len(data), "match": 0}, "match")):
        dev.errors[(GROUP_IMAGE, 1)] = body
        msg = _protocol_error(c.upload, io.BytesIO(data), len(data), buf_size=384)
        assert repr(field) in msg and "image upload" in msg, msg


def test_updater_reports_a_hostile_device_instead_of_raising():
    from smpdfu import mcuboot

    dev, c = _client()
    img = build()
    info = mcuboot.verify(io.BytesIO(img))
    dev.errors[(GROUP_IMAGE, 0)] = {"images": [{"slot": 0, "hash": 1 << 32, "active": True}]}
    res = Updater(c, log=lambda s: None, connect_ms=500).run(io.BytesIO(img), info)
    assert res.outcome == "failed"
    assert isinstance(res.error, ProtocolError)
    assert "'hash'" in res.message


def _answer_of(body, raw=None, size=0x12345):
    # Where an SMPTarget goes on after the answer to its first upload request
    # is ``body`` (CBOR bytes ``raw`` when given): ``(held, match)``, or the
    # type of the error it raises.
    from smpdfu.dfu_smp import SMPTarget
    from smpdfu.proto import IMG_UPLOAD

    dev, c = _client()
    dev.errors[(GROUP_IMAGE, IMG_UPLOAD)] = body if raw is None else raw
    t = SMPTarget(c, verify=False, buf_size=384, buf_count=2, first_timeout_ms=300)
    t.init(size, sha=bytes(32))
    t.write(bytes(64))
    try:
        t.offset()  # sends the first request and reads its answer
        return t.held, t.match
    except Exception as e:  # noqa: BLE001 - compared below
        return type(e)


def test_the_usual_upload_answer_read_off_the_bytes_agrees_with_the_full_decode():
    # SMPTarget reads {"off": n} and {"rc": 0, "off": n} off the bytes; every
    # other answer goes through the full, type-checked decode. Both give the same.
    from smpdfu.messages import upload_offset

    size = 0x12345
    _, c = _client()
    for off in (0, 1, 23, 24, 255, 256, 65535, 65536, size):
        assert _answer_of({"off": off}) == (off, None)
        assert _answer_of({"rc": 0, "off": off}) == (off, None)
        assert _answer_of({"off": off, "rc": 0}) == (off, None)
    # non-minimal heads are still CBOR: 5 as one, two and four bytes
    for raw in (b"\xa1\x63off\x18\x05", b"\xa1\x63off\x19\x00\x05", b"\xa1\x63off\x1a\x00\x00\x00\x05"):
        assert _answer_of(None, raw) == (5, None)
    assert _answer_of({"off": size, "match": True}) == (size, True)
    # what the quick read must not take: each gets the general path's verdict
    for body in ({"off": size + 1}, {"off": -1}, {"off": True}, {"off": "4"}, {"rc": 1, "off": 4},
                 {"rc": 0}, {"off": 4, "x": 1}, {"rc": 0, "off": 1 << 40}):
        want = None
        try:
            want = (upload_offset(c.decode(b"\x00" * 8 + dumps(body)), size)[0], None)
        except Exception as e:  # noqa: BLE001
            want = type(e)
        assert _answer_of(body) == want, body
    assert _answer_of({"rc": 1, "off": 4}) is MgmtError
    assert _answer_of({"off": True}) is ProtocolError
    assert _answer_of(None, b"") is ProtocolError  # an empty body has no "off"
    # truncated and trailing bytes
    assert _answer_of(None, b"\xa1\x63off\x19\x00") is CBORError
    assert _answer_of(None, b"\xa1\x63off\x05\x00") is CBORError


def test_field_takes_exactly_its_type():
    from smpdfu.messages import field

    w = "x"
    assert field({"n": 5}, "n", w, int, None, 0, 9) == 5
    assert field({}, "n", w, int, 7) == 7 and field({"n": None}, "n", w, int, None) is None
    for bad in (True, "5", 10, -1, 5.0, None):  # a bool is no int; out of 0..9; null without a None default
        assert "'n'" in _protocol_error(field, {"n": bad}, "n", w, int, 0, 0, 9)
    assert "has no 'n'" in _protocol_error(field, {}, "n", w, int)
    assert field({"b": False}, "b", w, bool, None) is False
    for bad in (0, 1, "true", None):
        assert "'b'" in _protocol_error(field, {"b": bad}, "b", w, bool, False)
    assert field({"h": b"\x01" * 64}, "h", w, bytes, None) == b"\x01" * 64
    for bad in (b"", b"\x01" * 65, 32, "ab" * 16, [1]):  # a hash is 1..64 bytes, never an int or text
        assert "expected bytes 1..64" in _protocol_error(field, {"h": bad}, "h", w, bytes, None)
    assert field({"l": [{}, {"a": 1}]}, "l", w, list) == [{}, {"a": 1}]
    assert "'l[]' is 3, expected map" in _protocol_error(field, {"l": [{}, 3]}, "l", w, list)
    # a command given as group << 8 | cmd is named in the message
    assert "answer to image upload: 'off'" in _protocol_error(field, {"off": -1}, "off", 0x0101, int)
    assert "answer to group 9 (shell) command 0: 's'" in _protocol_error(field, {"s": 1}, "s", 0x0900, str)
