"""SMPClient against the in-memory SMP device (the portable server), through the real serial framing.

Portable: pytest on CPython and the MicroPython runner.
"""

from smpdfu import commands
from smpdfu.client import SMPClient
from smpdfu.errcodes import OS_INFO, command_name
from smpdfu.compat import ticks_diff, ticks_ms
from smpdfu.errors import CBORError, DeviceError, FrameError, ImageError, MgmtError, ProtocolError, SMPTimeout
from smpdfu.proto import GROUP_IMAGE, GROUP_OS, OP_READ, OP_WRITE, OS_ECHO
from smpdfu.messages import ImageSlot, McuMgrParams
from smpdfu.transport import SerialTransport

from _portable import raises
from mcuimg import build, image_hash
from smpdev import SMPDevice


def _client(dev=None, timeout_ms=300, **kw):
    if dev is None:
        dev = SMPDevice()
    return dev, SMPClient(SerialTransport(dev, **kw), timeout_ms=timeout_ms)


def test_echo_roundtrip():
    dev, c = _client()
    assert c.echo("hello") == "hello"
    assert c.echo("gr\u00fc\u00dfe") == "gr\u00fc\u00dfe"
    assert dev.requests == 2
    assert len(c.pending) == 0


def test_long_echo_spans_several_frame_lines():
    dev, c = _client()
    text = "0123456789" * 25  # 250 bytes: 3+ lines of 93 raw bytes each
    assert c.echo(text) == text


def test_v1_answers_are_accepted():
    dev, c = _client(SMPDevice(v1=True))
    assert c.echo("v1") == "v1"
    p = c.params()
    assert p.buf_size == 384


def test_params():
    dev, c = _client(SMPDevice(buf_size=1024, buf_count=6))
    p = c.params()
    assert isinstance(p, McuMgrParams)
    assert (p.buf_size, p.buf_count) == (1024, 6)


def test_params_missing_is_mgmt_error_enotsup():
    dev, c = _client(SMPDevice(params=False))
    e = raises(MgmtError, c.params)
    assert e.rc == 8 and e.name == "ENOTSUP"


def test_image_state_parses_slots():
    dev, c = _client()
    img = build(version=(2, 0, 0, 0))
    dev.put_image(1, img)
    dev.mark_pending()
    slots = c.image_state()
    assert len(slots) == 2
    s0, s1 = slots
    assert isinstance(s0, ImageSlot)
    assert (s0.image, s0.slot, s0.version) == (0, 0, "1.0.0")
    # every flag a real bool
    assert (s0.bootable, s0.pending, s0.confirmed, s0.active, s0.permanent) == (True, False, True, True, False)
    assert s1.slot == 1 and s1.pending is True and s1.confirmed is False and s1.permanent is False
    assert s1.version == "2.0.0"
    assert s1.hash == image_hash(img) and type(s1.hash) is bytes


def test_v2_group_error_becomes_image_error():
    dev, c = _client()
    dev.errors[(GROUP_IMAGE, 0)] = {"err": {"group": 1, "rc": 23}}
    e = raises(ImageError, c.image_state)
    assert e.rc == 23
    assert e.name == "INVALID_IMAGE_HEADER_MAGIC"
    assert "INVALID_IMAGE_HEADER_MAGIC" in str(e)


def test_v2_os_group_error_is_named_after_the_os_group():
    dev, c = _client()
    dev.errors[(GROUP_OS, OS_INFO)] = {"err": {"group": 0, "rc": 2}}
    e = raises(DeviceError, commands.os_info, c)
    assert e.name == "INVALID_FORMAT" and e.group == GROUP_OS
    assert not isinstance(e, ImageError)


def test_v1_rc_error_becomes_mgmt_error_with_reason():
    dev, c = _client()
    dev.errors[(GROUP_OS, OS_ECHO)] = {"rc": 3, "rsn": "bad echo"}
    e = raises(MgmtError, c.echo, "x")
    assert e.rc == 3 and e.name == "EINVAL" and e.group is None  # the rc form has no group
    assert "bad echo" in str(e)
    # a success with "rc": 0 is not an error
    dev.errors[(GROUP_OS, OS_ECHO)] = {"rc": 0, "r": "ok"}
    assert c.echo("x") == "ok"


def test_timeout_names_command_and_time():
    dev, c = _client(timeout_ms=120)
    assert c.echo("heard") == "heard"  # later requests are not retried
    dev.drop_requests = 1
    t0 = ticks_ms()
    e = raises(SMPTimeout, c.echo, "lost")
    assert ticks_diff(ticks_ms(), t0) >= 120
    msg = str(e)
    assert "group 0 (OS) command 0" in msg and "120 ms" in msg
    assert len(c.pending) == 0
    assert c.echo("next") == "next"


def test_first_request_without_answer_is_sent_again_after_a_newline():
    # A stray byte on the device's line swallows one request (Zephyr drops the
    # line); the first request of a link is sent again, once.
    dev, c = _client(timeout_ms=100)
    dev.drop_requests = 1
    written = []
    write = dev.write
    dev.write = lambda b: (written.append(bytes(b)), write(b))[1]
    assert c.echo("first") == "first"
    assert dev.requests == 2
    assert b"\n" in written  # the device's partial line was ended before the retry
    dev.drop_requests = 1
    raises(SMPTimeout, c.echo, "later")  # only the first request of a link
    dev2, c2 = _client(timeout_ms=60)
    dev2.drop_requests = 2
    raises(SMPTimeout, c2.echo, "lost twice")
    assert dev2.requests == 2


def test_late_response_is_ignored():
    dev, c = _client(timeout_ms=40)
    assert c.echo("heard") == "heard"
    dev.hold = True  # the answer comes only after the client gave up
    raises(SMPTimeout, c.echo, "late")
    dev.hold = False
    dev.release()
    assert c.echo("fresh") == "fresh"
    assert c.stray == 1


def test_delayed_response_within_timeout():
    dev, c = _client(timeout_ms=3000)
    dev.delay_ms = 60
    t0 = ticks_ms()
    assert c.echo("slow") == "slow"
    assert ticks_diff(ticks_ms(), t0) >= 60


def test_seq_matching_with_out_of_order_answers():
    dev, c = _client()
    dev.hold = True
    s1 = c.send_request(OP_WRITE, GROUP_OS, 0, {"d": "one"})
    s2 = c.send_request(OP_WRITE, GROUP_OS, 0, {"d": "two"})
    s3 = c.send_request(OP_WRITE, GROUP_OS, 0, {"d": "three"})
    assert len(set((s1, s2, s3))) == 3
    assert dev.held() == 3 and len(c.pending) == 3
    dev.release([2, 0, 1])  # answers to three, one, two
    assert c.wait(s2)["r"] == "two"  # one and three are stashed meanwhile
    assert type(c.pending[s1]) is not int and type(c.pending[s3]) is not int  # their packets
    assert c.wait(s1)["r"] == "one"
    assert c.wait(s3)["r"] == "three"
    assert len(c.pending) == 0


def test_sequence_numbers_wrap_at_256():
    dev, c = _client()
    seen = set()
    for i in range(260):
        seq = c.send_request(OP_WRITE, GROUP_OS, 0, {"d": "%d" % i})
        seen.add(seq)
        assert c.wait(seq)["r"] == "%d" % i
    assert seen == set(range(256))


def test_stray_response_for_unknown_seq_is_ignored():
    dev, c = _client()
    dev.inject(OP_WRITE | 1, GROUP_OS, 0, 200, {"r": "stray"})
    assert c.echo("mine") == "mine"
    assert c.stray == 1


def test_response_with_wrong_group_is_protocol_error():
    dev, c = _client()
    dev.hold = True
    seq = c.send_request(OP_WRITE, GROUP_OS, 0, {"d": "x"})
    dev.inject(OP_WRITE | 1, GROUP_IMAGE, 0, seq, {})
    e = raises(ProtocolError, c.wait, seq)
    assert "does not match" in str(e)
    dev.hold = False
    dev.release()  # the real answer now comes for a seq nobody waits for
    assert c.echo("after") == "after"


def test_wait_for_unknown_seq_is_protocol_error():
    dev, c = _client()
    raises(ProtocolError, c.wait, 77)


def test_corrupt_response_frame_raises_frame_error_then_recovers():
    dev, c = _client()
    dev.corrupt_responses = 1
    raises(FrameError, c.echo, "x")
    assert len(c.pending) == 0
    assert c.echo("y") == "y"


def test_console_text_and_split_reads():
    dev, c = _client()
    dev.console = b"[00:00:01.234,000] <inf> app: log line\r\n"
    dev.max_read = 7  # the UART hands data over 7 bytes at a time
    assert c.echo("through the noise" * 10) == "through the noise" * 10
    assert c.params().buf_count == 4


def test_other_commands():
    dev, c = _client()
    assert commands.os_info(c, "s") == "Zephyr"
    assert commands.os_info(c, "v") == "1.0.0"  # the running image's version
    assert commands.os_info(c).split()[:5] == ["Zephyr", "unknown", "v3.7.0", "1.0.0", "Mon"]
    assert commands.bootloader_info(c) == {"bootloader": "MCUboot"}
    assert commands.bootloader_info(c, "mode") == {"mode": 3}  # swap using move
    c.reset()
    assert dev.resets == 1
    commands.image_erase(c)
    assert dev.erases == 1
    info = c.slot_info()
    assert info[0]["slots"][1]["slot"] == 1
    assert info[0]["slots"][1]["size"] == dev.flash.slot_size(1) == 1 << 20


def test_image_test_and_confirm():
    dev, c = _client()
    h = image_hash(build(version=(2, 0, 0, 0)))
    dev.put_image(1, build(version=(2, 0, 0, 0)))
    slots = c.image_test(h)
    assert slots[1].pending and not slots[1].permanent
    # an unknown hash: the image group's HASH_NOT_FOUND
    e = raises(ImageError, c.image_test, b"\x01" * 32)
    assert e.name == "HASH_NOT_FOUND"
    # erase refused while slot 1 is pending
    e = raises(ImageError, commands.image_erase, c, 1)
    assert e.name == "NO_FREE_SLOT"
    # same refusal in the rc form for a v1 client (Zephyr translates it to EBADSTATE)
    dev1, c1 = _client(SMPDevice(v1=True))
    dev1.put_image(1, build(version=(2, 0, 0, 0)))
    c1.image_test(h)
    e = raises(MgmtError, commands.image_erase, c1, 1)
    assert e.name == "EBADSTATE"
    # confirming the running image is refused while a test swap is pending
    e = raises(ImageError, c.image_confirm)
    assert e.name == "IMAGE_ALREADY_PENDING"
    # nothing pending: confirm the running image, then slot 1 by hash (permanent)
    dev2, c2 = _client()
    dev2.put_image(1, build(version=(2, 0, 0, 0)))
    assert c2.image_confirm()[0].confirmed
    slots = c2.image_confirm(h)
    assert slots[1].pending and slots[1].permanent


def test_unknown_command_is_enotsup():
    dev, c = _client()
    e = raises(MgmtError, c.request, OP_READ, 63, 0)
    assert e.name == "ENOTSUP"


def test_body_written_in_place():
    dev, c = _client()
    enc = c.encoder()  # straight into the transport's packet buffer, as an upload chunk is
    enc.head(5, 1)  # a map of one pair
    enc.value("d")
    enc.raw(b"\x70written in place")  # CBOR already: text of 16 bytes
    assert c.wait(c.send_encoded(OP_WRITE, GROUP_OS, 0))["r"] == "written in place"


def test_request_too_big_for_packet_buffer_raises_before_sending():
    dev, c = _client(max_packet=64)
    raises(CBORError, c.echo, "x" * 100)
    assert dev.requests == 0 and len(c.pending) == 0
    assert c.echo("small") == "small"


def test_wait_until_ready_drains_garbage():
    dev, c = _client()
    dev.inject_raw(b"*** Booting Zephyr OS ***\r\n\x06\x09AAA")  # a boot banner, half a frame
    dev.drop_requests = 2  # still booting: the first echoes go nowhere
    c.wait_until_ready(timeout_ms=3000, attempt_ms=50)
    assert dev.requests == 3
    assert c.echo("ok") == "ok"


def test_wait_until_ready_times_out():
    dev, c = _client()
    dev.drop_requests = 10000
    t0 = ticks_ms()
    e = raises(SMPTimeout, c.wait_until_ready, 200, 50)
    assert ticks_diff(ticks_ms(), t0) >= 200
    assert "200 ms" in str(e)


def test_command_name():
    assert command_name(1, 1) == "group 1 (image) command 1"
    assert command_name(77, 2) == "group 77 command 2"
