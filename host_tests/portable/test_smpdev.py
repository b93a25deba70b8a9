"""The in-process test device itself: its flash, its reset hook, its skim mode (portable)."""

from smpdfu.client import SMPClient
from smpdfu.errors import ImageError
from smpdfu.transport import SerialTransport

from _portable import raises

from mcuimg import build, image_hash
from smpdev import MemoryFlash, SMPDevice
from streams import PatternStream, pattern_bytes, pattern_sha


def test_memory_flash_pages_cross_boundaries_and_erase():
    f = MemoryFlash(slot_size=3 * 256, page_size=256)
    assert f.is_erased(0) and f.is_erased(1)
    f.write(1, 250, b"abcdefghij")  # across the first page boundary
    buf = bytearray(12)
    f.read(1, 249, buf)
    assert bytes(buf) == b"\xffabcdefghij\xff"
    assert f.is_erased(0) and not f.is_erased(1)
    f.erase(1, 0, 256)  # only the first page
    f.read(1, 249, buf)
    assert bytes(buf) == b"\xff" * 7 + b"ghij\xff"
    f.erase(1, 256, 256)
    assert f.is_erased(1)


def test_running_image_and_state():
    dev = SMPDevice(running=(3, 1, 4, 0))
    state = dev.state()
    assert len(state) == 1 and state[0]["version"] == "3.1.4" and state[0]["active"]
    img = build(version=(4, 0, 0, 0))
    dev.put_image(1, img)
    dev.mark_pending()
    s1 = dev.state()[1]
    assert s1["hash"] == image_hash(img) and s1["pending"] and not s1["permanent"]


def test_reset_mid_upload_loses_progress_not_flash():
    dev = SMPDevice()
    c = SMPClient(SerialTransport(dev), timeout_ms=200)
    dev.reset_at = 3000  # the device reboots instead of taking the chunk at 3000+
    r = c.upload(PatternStream(8000))
    assert dev.resets == 1 and r.retries >= 1 and r.match is True
    assert dev.erases == 2  # the upload started over after the reboot
    assert dev.slot_sha(1, 8000) == pattern_sha(8000)


def test_start_upload_leaves_a_partial_upload():
    dev = SMPDevice()
    dev.start_upload(5000, pattern_sha(5000), pattern_bytes(1200))
    assert dev.upload_off == 1200 and dev.written == 0 and dev.erases == 0
    assert dev.slot(1, 1200) == pattern_bytes(1200)


def test_skim_mode_answers_offsets_without_decoding_data():
    dev = SMPDevice(skim=True)
    c = SMPClient(SerialTransport(dev), timeout_ms=2000)
    r = c.upload(PatternStream(20000))
    assert r.match is None  # nothing kept, nothing checked
    assert dev.written == 20000 and dev.upload_requests == r.chunks
    assert dev.max_request == 380 and dev.oversize == 0
    # the first chunk is decoded whole (magic checked), the rest skimmed
    assert dev.first_chunk["len"] == 20000
    e = raises(ImageError, c.upload, PatternStream(2000, magic=b"\x00\x00\x00\x00"))
    assert e.name == "INVALID_IMAGE_HEADER_MAGIC"
