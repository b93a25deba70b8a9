"""Image upload against the in-memory SMP device (the portable server), through the real serial framing.

Portable: pytest on CPython and the MicroPython runner.
"""

import io

from smpdfu.client import SMPClient
from smpdfu.errors import FrameError, ImageError, ProtocolError, SMPTimeout
from smpdfu.transport import SerialTransport
from smpdfu.dfu_smp import SMPTarget
from smpdfu.upload import upload

from _portable import raises
from smpdev import SMPDevice
from streams import ForwardStream, PatternStream, pattern_bytes, pattern_sha


def _client(dev=None, timeout_ms=2000, **kw):
    if dev is None:
        dev = SMPDevice()
    return dev, SMPClient(SerialTransport(dev, **kw), timeout_ms=timeout_ms)


class _Stop(Exception):
    pass


def test_happy_path_fills_server_buffer_and_matches():
    dev, c = _client()
    size = 10 * 1024 + 17
    img = pattern_bytes(size)
    seen = []
    r = c.upload(io.BytesIO(img), progress=lambda off, total: seen.append((off, total)))
    assert r.match is True
    assert dev.slot(1, size) == img
    assert dev.written == size and dev.erases == 1
    # every full request is exactly buf_size - 4 (length + CRC share the buffer)
    assert dev.oversize == 0
    assert dev.max_request == 384 - 4
    assert r.size == size and r.retries == 0 and r.resumed_from == 0
    assert r.chunks == dev.upload_requests
    # the first request carries len, image and the file's sha
    first = dev.first_chunk
    assert first["len"] == size and first["image"] == 0 and first["off"] == 0
    assert first["sha"] == pattern_sha(size)
    assert "upgrade" not in first
    # progress: increasing offsets up to the size, total always the size
    offs = [o for o, t in seen]
    assert offs == sorted(offs) and offs[-1] == size
    assert all(t == size for o, t in seen)
    assert len(seen) == r.chunks


def test_chunks_fill_other_buffer_sizes_and_respect_max_packet():
    for buf_size, max_packet, expect in ((128, 2048, 124), (1024, 2048, 1020), (4096, 1024, 1024)):
        dev, c = _client(SMPDevice(buf_size=buf_size), max_packet=max_packet)
        size = 5000
        r = c.upload(PatternStream(size))
        assert r.match is True, buf_size
        assert dev.oversize == 0
        assert dev.max_request == expect, (buf_size, dev.max_request)


def test_pipelining_window_follows_buf_count():
    dev, c = _client(SMPDevice(buf_count=4))
    r = c.upload(PatternStream(8000))
    assert r.window == 3 and dev.max_unread == 3 and r.match

    dev, c = _client(SMPDevice(buf_count=2))
    r = c.upload(PatternStream(8000))
    assert r.window == 1 and dev.max_unread == 1 and r.match

    dev, c = _client(SMPDevice(buf_count=8))
    r = c.upload(PatternStream(8000), window=1)
    assert r.window == 1 and dev.max_unread == 1 and r.match

    dev, c = _client(SMPDevice(buf_count=1))  # no spare buffer: still one in flight
    r = c.upload(PatternStream(8000))
    assert r.window == 1 and dev.max_unread == 1 and r.match


def test_no_params_command_uses_384_and_one_in_flight():
    dev, c = _client(SMPDevice(buf_size=384, params=False))
    r = c.upload(PatternStream(3000))
    assert r.match is True
    assert dev.max_request == 380 and dev.max_unread == 1 and r.window == 1


def test_resume_when_server_already_has_part():
    size = 6000
    dev, c = _client()
    dev.start_upload(size, pattern_sha(size), pattern_bytes(4000))
    seen = []
    r = c.upload(PatternStream(size), progress=lambda off, total: seen.append(off))
    assert r.resumed_from == 4000
    assert seen[0] == 4000
    assert dev.written == size - 4000  # nothing before 4000 was sent again as data
    assert dev.erases == 0
    assert r.match is True and dev.slot_sha(1, size) == pattern_sha(size)


def test_resume_after_interrupted_upload():
    size = 20000
    dev, c = _client()
    img = pattern_bytes(size)

    def stop_halfway(off, total):
        if off >= total // 2:
            raise _Stop()

    raises(_Stop, c.upload, io.BytesIO(img), progress=stop_halfway)
    assert len(c.pending) == 0  # nothing left pending in the client
    done = dev.upload_off
    assert size // 2 <= done < size
    r = c.upload(io.BytesIO(img))
    assert r.resumed_from >= done
    assert dev.written == size  # each byte accepted once
    assert r.match is True


def _offsets(size, **kw):
    # The offsets an upload of ``size`` bytes confirms, from a clean run.
    dev, c = _client()
    seen = []
    c.upload(PatternStream(size), progress=lambda o, t: seen.append(o), **kw)
    return seen


def test_dropped_chunk_one_in_flight_times_out_and_retries():
    dev, c = _client(timeout_ms=100)
    dev.drop_upload_offsets = [_offsets(3000, window=1)[1]]
    r = c.upload(PatternStream(3000), window=1)
    assert r.retries == 1 and r.match is True
    assert dev.written == 3000


def test_dropped_chunk_pipelined_server_answers_expected_offset():
    dev, c = _client(timeout_ms=5000)
    dev.drop_upload_offsets = [_offsets(8000, window=3)[2]]
    r = c.upload(PatternStream(8000), window=3)
    assert r.match is True and dev.written == 8000
    assert r.retries == 1
    # the loss was seen from the next answer, not after a 5 s timeout
    assert r.elapsed_ms < 4000


def test_window_falls_back_to_one_after_a_loss_then_grows_again():
    dev, c = _client(timeout_ms=5000)
    size = 380 * 40
    dev.drop_upload_offsets = [_offsets(size, window=3)[2]]
    in_flight = []  # requests outstanding right after each send
    send = c.send_encoded

    def counting_send(*args):
        seq = send(*args)
        in_flight.append(len(c.pending))
        return seq

    c.send_encoded = counting_send
    r = c.upload(PatternStream(size), window=3)
    assert r.match is True and dev.written == size and r.retries == 1
    # Three in flight, then one at a time after the loss, then two after 8
    # clean answers, then three again after 8 more.
    assert 3 in in_flight
    i = in_flight.index(3)
    j = in_flight.index(1, i)
    k = in_flight.index(2, j)
    assert in_flight[j:k] == [1] * (k - j) and k - j >= 8
    assert 3 in in_flight[k:]
    assert r.window == 3


def test_corrupted_response_frame_is_retried():
    dev, c = _client(timeout_ms=3000)
    dev.corrupt_upload_offsets = [_offsets(6000)[3]]
    r = c.upload(PatternStream(6000))
    assert r.match is True and dev.written == 6000
    assert r.retries == 1
    assert r.elapsed_ms < 2500  # no timeout needed: the broken frame is seen at once


def test_corrupted_first_response_is_retried_as_resume():
    dev, c = _client(timeout_ms=500)
    dev.corrupt_upload_offsets = [0]
    r = c.upload(PatternStream(3000), first_timeout_ms=500)
    assert r.retries == 1 and r.match is True
    assert dev.erases == 1  # the retried offset 0 resumed, no second erase
    assert dev.written == 3000


def test_retries_exhausted_fails_clearly():
    dev, c = _client(timeout_ms=50)
    dev.drop_requests = 1000
    e = raises(SMPTimeout, c.upload, PatternStream(3000), first_timeout_ms=50, retries=2, buf_size=384)
    assert "offset 0" in str(e) and "3 attempts" in str(e)
    # later in the upload: the offset reached is named
    dev, c = _client(timeout_ms=50)
    dev.drop_upload_offsets = [_offsets(3000)[2]] * 3
    e = raises(SMPTimeout, c.upload, PatternStream(3000), retries=2)
    assert ("offset %d of 3000" % _offsets(3000)[2]) in str(e)


def test_match_false_is_an_error():
    dev, c = _client()
    e = raises(ProtocolError, c.upload, PatternStream(2000), sha=b"\x00" * 32)
    assert "hash mismatch" in str(e)


def test_match_absent_is_fine():
    dev, c = _client(SMPDevice(image_check=False))
    r = c.upload(PatternStream(2000))
    assert r.match is None
    assert dev.slot_sha(1, 2000) == pattern_sha(2000)


def test_bad_magic_is_image_error():
    dev, c = _client()
    e = raises(ImageError, c.upload, PatternStream(2000, magic=b"\x00\x00\x00\x00"))
    assert e.rc == 23 and e.name == "INVALID_IMAGE_HEADER_MAGIC"


def test_image_too_large_is_image_error():
    dev, c = _client(SMPDevice(slot_size=4096))
    e = raises(ImageError, c.upload, PatternStream(5000))
    assert e.name == "INVALID_IMAGE_TOO_LARGE"


def test_forward_only_stream_needs_sha_and_size():
    size = 4000
    dev, c = _client()
    raises(ValueError, c.upload, ForwardStream(size), size)
    raises(ValueError, c.upload, ForwardStream(size))
    r = c.upload(ForwardStream(size, max_read=50), size, sha=pattern_sha(size))
    assert r.match is True and dev.written == size


def test_forward_only_stream_resumes_by_skipping():
    size = 6000
    dev, c = _client()
    dev.start_upload(size, pattern_sha(size), pattern_bytes(2500))
    r = c.upload(ForwardStream(size), size, sha=pattern_sha(size))
    assert r.resumed_from == 2500 and r.match is True


def test_sha_from_image_info_and_options_sent():
    class Info:
        file_sha = pattern_sha(3000)

    dev, c = _client()
    r = c.upload(PatternStream(3000), image=1, sha=Info(), upgrade=True)
    assert r.match is True
    assert dev.first_chunk["image"] == 1 and dev.first_chunk["upgrade"] is True
    assert dev.first_chunk["sha"] == Info.file_sha


def test_no_sha_sent_with_sha_false():
    # Zephyr's image check answers match: false when no sha came: a server without it
    dev, c = _client(SMPDevice(image_check=False))
    r = c.upload(PatternStream(3000), sha=False)
    assert "sha" not in dev.first_chunk and r.match is None
    assert dev.slot_sha(1, 3000) == pattern_sha(3000)


def test_short_reads_from_stream():
    dev, c = _client()
    r = upload(c, PatternStream(5000, max_read=33))
    assert r.match is True and dev.written == 5000


def test_explicit_buffers_and_a_small_ring():
    dev, c = _client(SMPDevice(buf_size=512, buf_count=3))
    r = upload(c, PatternStream(7000), buf_size=256, buf_count=3)
    assert r.match is True
    # no params request; one slot info request (the erase wait)
    assert dev.max_request == 252 and dev.requests == r.chunks + 1
    assert r.window == 2
    # ring: the bytes kept for resending bound the requests in flight...
    dev, c = _client(SMPDevice(buf_size=512, buf_count=4))
    r = upload(c, PatternStream(7000), ring=1100)
    assert r.match is True and dev.max_request == 508
    assert r.window == 2 and dev.max_unread == 2
    # ...and, smaller than a request, its size
    dev, c = _client(SMPDevice(buf_size=512, buf_count=4))
    r = upload(c, PatternStream(7000), ring=200)
    assert r.match is True and dev.max_request == 200
    assert r.window == 1 and dev.max_unread == 1
    # ...and a bytearray is the ring itself, its length the size: the image's
    # last bytes sent are still in it after the upload (it wraps at 2 * 508)
    ring = bytearray(1100)
    dev, c = _client(SMPDevice(buf_size=512, buf_count=4))
    s = PatternStream(7000)
    r = upload(c, s, ring=ring)
    assert r.match is True and dev.max_request == 508
    assert r.window == 2 and dev.max_unread == 2
    s.seek(7000 - 1016)
    last = bytearray(1016)
    s.readinto(last)
    assert ring[:1016] == last[1016 - 7000 % 1016:] + last[:1016 - 7000 % 1016]
    assert ring[1016:] == bytes(84)  # past window * request: never used


def erase_wait(c, size):
    # (ms, bytes): how long SMPTarget.init lets the first chunk's answer take,
    # and the bytes of flash the device erases meanwhile
    t = SMPTarget(c, verify=False, buf_size=384, buf_count=2)
    t.init(size)
    return t._up[:2]


def test_first_chunk_waits_for_the_erase_the_image_needs():
    dev, c = _client(SMPDevice(slot_size=0x76000), timeout_ms=1000)
    # the image's pages (2 of 4 KiB) and the trailer's
    assert erase_wait(c, 5000) == (1000 + 3 * 100, 3 * 4096)
    assert erase_wait(c, 400000) == (1000 + 99 * 100, 99 * 4096)
    dev.errors[(1, 6)] = {"rc": 8}  # an older server without slot info
    assert erase_wait(c, 400000) == (1000 + 99 * 100, 99 * 4096)
    dev, c = _client(SMPDevice(slot_size=0x2000, running=None), timeout_ms=1000)
    assert erase_wait(c, 400000) == (1000 + 2 * 100, 0x2000)  # never more than the whole slot


def test_lost_first_chunk_says_what_it_waited_for():
    dev, c = _client(SMPDevice(slot_size=0x2000, running=None), timeout_ms=50)
    dev.drop_upload_offsets = [0, 0]
    e = raises(SMPTimeout, c.upload, PatternStream(3000), retries=1)
    msg = str(e)
    assert "offset 0 of 3000 after 2 attempts" in msg and "250 ms" in msg
    assert "each waited 250 ms: the device erases 8192 bytes of flash first" in msg


def test_console_noise_and_small_uart_reads_during_upload():
    dev, c = _client()
    dev.console = b"<inf> img_mgmt: chunk\r\n"
    dev.max_read = 16
    r = c.upload(PatternStream(6000))
    assert r.match is True and r.retries == 0


def test_frame_error_on_every_answer_fails_as_frame_error():
    dev, c = _client(timeout_ms=200)
    dev.corrupt_responses = 1000
    e = raises(FrameError, c.upload, PatternStream(2000), buf_size=384, retries=1)
    assert "offset 0" in str(e)
