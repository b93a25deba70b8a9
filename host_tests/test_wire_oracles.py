"""The wire layer checked against real implementations: PyPI smp and cbor2."""

import os

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smp import header as smphdr
from smp import image_management as smpimg
from smp import os_management as smpos
from smp import packet as smppacket

from _portable import dumps
from smpdfu import cbor, errcodes, errors, proto
from smpdfu.framing import FrameDecoder, FrameEncoder
from smpdfu.header import HEADER_SIZE, pack_header
from smpdfu.proto import OP_READ, OP_WRITE
from smpdfu.server import unpack_header

# --- serial framing ----------------------------------------------------------


@pytest.mark.parametrize("n", [8, 9, 50, 86, 87, 88, 89, 90, 91, 92, 93, 94, 180, 181, 600, 2044])
def test_our_frames_decode_with_smp_packet(n):
    packet = os.urandom(n)
    lines = bytes(FrameEncoder(2048).encode(packet=packet)).split(b"\n")[:-1]
    dec = smppacket.decode()
    next(dec)
    with pytest.raises(StopIteration) as stop:
        for line in lines:
            dec.send(line + b"\n")
    assert stop.value.value == packet


@pytest.mark.parametrize("n", [8, 50, 90, 91, 200, 2044])
def test_smp_packet_frames_decode_with_ours(n):
    packet = os.urandom(n)
    dec = FrameDecoder(2048)
    for line in smppacket.encode(packet):
        dec.feed(line)
    assert dec.next() == packet


@given(st.binary(min_size=8, max_size=1500), st.integers(min_value=1, max_value=64))
@settings(max_examples=150, deadline=None)
def test_frames_survive_any_read_split(packet, step):
    wire = b"noise\n" + bytes(FrameEncoder(1500).encode(packet=packet)) + b"more noise\n"
    dec = FrameDecoder(1500)
    for i in range(0, len(wire), step):
        dec.feed(wire[i:i + step])
    assert dec.next() == packet


# --- messages: header + CBOR bytes against smp's message classes -----------------


def _ours(op, group, cmd, seq, body):
    raw = dumps(body)
    buf = bytearray(HEADER_SIZE + len(raw))
    pack_header(buf, 0, op, len(raw), group, seq, cmd)
    buf[HEADER_SIZE:] = raw
    return bytes(buf)


def test_echo_request_bytes_match_smp():
    ref = smpos.EchoWriteRequest(d="hello", sequence=17)
    assert _ours(OP_WRITE, 0, 0, 17, {"d": "hello"}) == bytes(ref)


def test_params_and_state_read_bytes_match_smp():
    assert _ours(OP_READ, 0, 6, 3, {}) == bytes(smpos.MCUMgrParametersReadRequest(sequence=3))
    assert _ours(OP_READ, 1, 0, 4, {}) == bytes(smpimg.ImageStatesReadRequest(sequence=4))


def test_upload_request_bytes_match_smp():
    data = os.urandom(300)
    sha = os.urandom(32)
    ref = smpimg.ImageUploadWriteRequest(off=0, data=data, len=4096, sha=sha, image=0, sequence=200)
    # smp encodes canonically (shorter keys first), so we write the same order.
    body = {"len": 4096, "off": 0, "sha": sha, "data": data, "image": 0}
    ours = _ours(OP_WRITE, 1, 1, 200, body)
    assert cbor2.loads(ours[8:]) == cbor2.loads(bytes(ref)[8:])
    assert ours[:8] == bytes(ref)[:8]
    assert ours == bytes(ref)
    # And smp parses ours back into the same message.
    parsed = smpimg.ImageUploadWriteRequest.loads(ours)
    assert parsed.off == 0 and parsed.data == data and parsed.sha == sha and parsed.len == 4096


def test_smp_responses_parse_with_our_header_and_cbor():
    rsp = smpimg.ImageUploadWriteResponse(off=1234, sequence=9, match=True)
    op, version, flags, length, group, seq, cmd = unpack_header(bytes(rsp))
    assert (op, version, group, seq, cmd) == (3, 1, 1, 9, 1)
    assert cbor.loads(bytes(rsp)[8:8 + length]) == {"off": 1234, "match": True}


def test_error_names_match_smp_enums():
    for rc in smpimg.IMG_MGMT_ERR:
        if rc.value < len(errcodes.IMG_ERR_NAMES):
            assert errcodes.IMG_ERR_NAMES[rc.value] == rc.name, rc
    assert len(errcodes.IMG_ERR_NAMES) >= max(smpimg.IMG_MGMT_ERR) + 1
    for rc in smpos.OS_MGMT_RET_RC:
        assert errcodes.OS_ERR_NAMES[rc.value] == rc.name
    from smp.error import MGMT_ERR

    for rc in MGMT_ERR:
        if rc.value < len(errcodes.MGMT_ERR_NAMES):
            assert errcodes.MGMT_ERR_NAMES[rc.value] == rc.name, rc


def _codes(prefix):
    return dict((k[len(prefix):], getattr(errcodes, k)) for k in dir(errcodes) if k.startswith(prefix) and k[-1] != "S")


def test_protocol_numbers_match_smp_enums():
    # every number in smpdfu.proto and smpdfu.errcodes is the one PyPI smp has under the same name
    from smp.error import MGMT_ERR

    ours = _codes("MGMT_ERR_")
    assert ours == dict((k, MGMT_ERR[k].value) for k in ours)
    ours = _codes("IMG_ERR_")
    assert ours and ours == dict((k, smpimg.IMG_MGMT_ERR[k].value) for k in ours)
    ours = _codes("OS_ERR_")
    assert ours and ours == dict((k, smpos.OS_MGMT_RET_RC[k].value) for k in ours)
    ops = smphdr.OP
    # a response's op is its request's | 1, as the client and the servers compute it
    assert (proto.OP_READ, proto.OP_READ | 1, proto.OP_WRITE, proto.OP_WRITE | 1) == (
        ops.READ, ops.READ_RSP, ops.WRITE, ops.WRITE_RSP)
    assert (errcodes.SMP_V1, proto.SMP_V2) == (smphdr.Version.V1, smphdr.Version.V2)
    assert proto.GROUP_OS == smphdr.GroupId.OS_MANAGEMENT
    assert proto.GROUP_IMAGE == smphdr.GroupId.IMAGE_MANAGEMENT
    osc = smphdr.CommandId.OSManagement
    assert (proto.OS_ECHO, proto.OS_RESET, proto.OS_PARAMS, errcodes.OS_INFO, errcodes.OS_BOOTLOADER_INFO) == (
        osc.ECHO, osc.RESET, osc.MCUMGR_PARAMETERS, osc.OS_APPLICATION_INFO, osc.BOOTLOADER_INFO)
    img = smphdr.CommandId.ImageManagement
    assert (proto.IMG_STATE, proto.IMG_UPLOAD, errcodes.IMG_ERASE) == (img.STATE, img.UPLOAD, img.ERASE)


def test_both_error_forms_become_named_exceptions():
    e = errcodes.error_from_response(cbor.loads(cbor2.dumps({"err": {"group": 1, "rc": 23}})), 1)
    assert isinstance(e, errors.ImageError)
    assert str(e) == "INVALID_IMAGE_HEADER_MAGIC (23)"
    e = errcodes.error_from_response({"rc": 6}, 1)
    assert isinstance(e, errors.MgmtError) and str(e) == "EBADSTATE (6)"
    assert errcodes.error_from_response({"off": 5}, 1) is None
    assert errcodes.error_from_response({"rc": 0}, 1) is None


# --- CBOR against cbor2 ---------------------------------------------------------

_leaves = (st.integers(min_value=-(2 ** 64), max_value=2 ** 64 - 1) | st.binary(max_size=300)
           | st.text(max_size=40) | st.booleans() | st.none())
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=6)
    | st.dictionaries(st.text(max_size=8) | st.integers(-1000, 1000), inner, max_size=6),
    max_leaves=30,
)


@given(_values)
@settings(max_examples=400, deadline=None)
def test_cbor_matches_cbor2_both_ways(value):
    ours = dumps(value)
    assert ours == cbor2.dumps(value)
    assert cbor.loads(cbor2.dumps(value)) == value


@given(_values)
@settings(max_examples=200, deadline=None)
def test_cbor_decodes_cbor2_indefinite_and_canonical(value):
    assert cbor.loads(cbor2.dumps(value, canonical=True)) == value


@given(st.binary(max_size=64))
@settings(max_examples=500, deadline=None)
def test_cbor_garbage_either_decodes_like_cbor2_or_raises_cbor_error(data):
    try:
        ours = cbor.loads(data)
    except errors.CBORError:
        return
    # Whatever we accept, cbor2 must decode to the same value.
    assert cbor2.loads(data) == ours


def test_cbor_indefinite_from_cbor2_encoder():
    # cbor2 can write indefinite-length containers through its encoder API.
    import io

    buf = io.BytesIO()
    enc = cbor2.CBOREncoder(buf)
    buf.write(b"\xbf")
    enc.encode("images")
    buf.write(b"\x9f")
    enc.encode({"slot": 0, "hash": b"\x01" * 32})
    buf.write(b"\xff\xff")
    assert cbor.loads(buf.getvalue()) == {"images": [{"slot": 0, "hash": b"\x01" * 32}]}
