"""Unit tests of the hand-written protobuf codec against the byte examples of the API
specification (api.md §6.3/§6.4) and the proto3 encoding rules."""

from __future__ import annotations

import struct

import pytest

from hanami_sdk import hanami_messages as hm
from hanami_sdk.hanami_messages import (
    ClusterIOMessage,
    DecodeError,
    FileUploadMessage,
    FileUploadResponseMessage,
)

ACK = bytes.fromhex("18 01 28 01 32 04 00 00 00 00")
TRAIN_END = bytes.fromhex("10 01 18 01 28 01 32 04 00 00 00 00")
UPLOAD_OK = bytes.fromhex("08 01")


@pytest.mark.parametrize("value, encoded", [
    (0, "00"), (1, "01"), (127, "7f"), (128, "80 01"), (300, "ac 02"),
    (131072, "80 80 08"), ((1 << 64) - 1, "ff ff ff ff ff ff ff ff ff 01"),
    (-1, "ff ff ff ff ff ff ff ff ff 01"),
])
def test_varint(value: int, encoded: str) -> None:
    raw = bytes.fromhex(encoded)
    assert hm.encode_varint(value) == raw
    assert hm.decode_varint(raw + b"\x7f", 0) == (value & ((1 << 64) - 1), len(raw))


def test_varint_errors() -> None:
    with pytest.raises(DecodeError):
        hm.decode_varint(b"\x80\x80", 0)
    with pytest.raises(DecodeError):
        hm.decode_varint(b"\xff" * 11, 0)
    with pytest.raises(ValueError):
        hm.encode_varint(1 << 64)


def test_ack_from_the_spec() -> None:
    ack = ClusterIOMessage.decode(ACK)
    assert ack == ClusterIOMessage(buffer_name="", is_last=False, process_type=hm.TRAIN_TYPE,
                                   target_buffer_type=hm.INPUT_BUFFER_TYPE,
                                   number_of_values=1, values=[0.0])
    assert ack.encode() == ACK


def test_train_end_from_the_spec() -> None:
    end = ClusterIOMessage.decode(TRAIN_END)
    assert end.is_last and end.process_type == hm.TRAIN_TYPE
    assert end.number_of_values == 1 and end.values == [0.0]
    assert end.encode() == TRAIN_END


def test_upload_replies_from_the_spec() -> None:
    ok = FileUploadResponseMessage.decode(UPLOAD_OK)
    assert ok.success is True and ok.error_message == ""
    assert FileUploadResponseMessage(success=True).encode() == UPLOAD_OK
    failed = FileUploadResponseMessage(success=False,
                                       error_message="Failed to write data to disc")
    raw = failed.encode()
    # success=false is the default and left out; only field 2 is on the wire
    assert raw == b"\x12\x1c" + b"Failed to write data to disc"
    assert FileUploadResponseMessage.decode(raw) == failed


def test_file_upload_message() -> None:
    chunk = FileUploadMessage(position=131072, data=b"abc")
    assert chunk.encode() == bytes.fromhex("08 80 80 08 12 03 61 62 63")
    assert FileUploadMessage.decode(chunk.encode()) == chunk
    # position 0 is the proto3 default and left out
    assert FileUploadMessage(position=0, data=b"\x00").encode() == bytes.fromhex("12 01 00")
    big = FileUploadMessage(position=(1 << 64) - 1, data=bytes(200000))
    assert FileUploadMessage.decode(big.encode()) == big
    with pytest.raises(ValueError):
        FileUploadMessage(position=-1).encode()


def test_request_input_message() -> None:
    message = ClusterIOMessage(buffer_name="picture", is_last=True,
                               process_type=hm.REQUEST_TYPE,
                               target_buffer_type=hm.INPUT_BUFFER_TYPE,
                               number_of_values=2, values=[1.0, 0.5])
    expected = (b"\x0a\x07picture" + b"\x10\x01" + b"\x28\x02"
                + b"\x32\x08" + bytes.fromhex("0000803f 0000003f"))
    assert message.encode() == expected
    assert ClusterIOMessage.decode(expected) == message


def test_expected_values_message() -> None:
    message = ClusterIOMessage(buffer_name="label", is_last=True,
                               process_type=hm.TRAIN_TYPE,
                               target_buffer_type=hm.EXPECTED_BUFFER_TYPE,
                               number_of_values=10, values=[0.0] * 5 + [1.0] + [0.0] * 4)
    raw = message.encode()
    assert raw.startswith(b"\x0a\x05label\x10\x01\x18\x01\x20\x02\x28\x0a\x32\x28")
    assert len(raw) == 7 + 2 + 2 + 2 + 2 + 2 + 40
    assert ClusterIOMessage.decode(raw) == message


def test_defaults_encode_to_nothing() -> None:
    assert ClusterIOMessage().encode() == b""
    assert FileUploadMessage().encode() == b""
    assert FileUploadResponseMessage().encode() == b""
    assert ClusterIOMessage.decode(b"") == ClusterIOMessage()


def test_float_values_round_to_f32() -> None:
    message = ClusterIOMessage(values=[0.1, -2.5, 1e-3])
    decoded = ClusterIOMessage.decode(message.encode())
    assert decoded.values == [struct.unpack("<f", struct.pack("<f", v))[0]
                              for v in (0.1, -2.5, 1e-3)]


def test_decoder_accepts_other_valid_encodings() -> None:
    raw = (
        b"\x78\x05"                       # field 15, varint
        + b"\x81\x01" + bytes(8)          # field 16, fixed64
        + b"\x8a\x01\x02ab"               # field 17, length-delimited
        + b"\x95\x01" + bytes(4)          # field 18, fixed32
        + b"\x35" + struct.pack("<f", 1.5)  # values, unpacked
        + b"\x35" + struct.pack("<f", 2.5)
        + b"\x32\x04" + struct.pack("<f", 3.5)  # values, packed, appended
        + b"\x28\x01" + b"\x28\x03"       # numberOfValues twice: the last one wins
        + b"\x0a\x01a" + b"\x0a\x01b"     # bufferName twice: the last one wins
        + b"\x18\x07"                     # an enum value the schema does not know
    )
    message = ClusterIOMessage.decode(raw)
    assert message.values == [1.5, 2.5, 3.5]
    assert message.number_of_values == 3
    assert message.buffer_name == "b"
    assert message.process_type == 7


@pytest.mark.parametrize("raw", [
    b"\x32\x05" + bytes(5),          # packed floats not a multiple of 4
    b"\x32\x08" + bytes(4),          # length beyond the end
    b"\x0a\x01\xff",                 # bufferName not UTF-8
    b"\x08",                         # key without value
    b"\x00\x00",                     # field number 0
    b"\x0b",                         # wire type 3 (group)
    b"\x35\x00\x00",                 # truncated fixed32
])
def test_decoder_rejects_malformed(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        ClusterIOMessage.decode(raw)


def test_wire_type_mismatch() -> None:
    with pytest.raises(DecodeError):
        ClusterIOMessage.decode(b"\x09" + bytes(8))  # bufferName as fixed64
    with pytest.raises(DecodeError):
        FileUploadResponseMessage.decode(b"\x0a\x00")  # success as length-delimited
    with pytest.raises(DecodeError):
        FileUploadMessage.decode(b"\x10\x01")  # data as varint


def test_bytes_recorded_from_the_original_server() -> None:
    """Frames of a direct-IO session with the original server (spec transcript)."""
    # client -> server: expected values of "label" (one-hot 7), last message of a sample
    recorded = bytes.fromhex("0a056c6162656c100118012002280a3228" + "00000000" * 7
                             + "0000803f" + "00000000" * 2)
    values = [0.0] * 10
    values[7] = 1.0
    message = ClusterIOMessage(buffer_name="label", is_last=True, process_type=hm.TRAIN_TYPE,
                               target_buffer_type=hm.EXPECTED_BUFFER_TYPE,
                               number_of_values=10, values=values)
    assert message.encode() == recorded
    # server -> client: the output of a request (fields 1, 5, 6 only)
    output = ClusterIOMessage.decode(bytes.fromhex(
        "0a056c6162656c280a3228af4b883b9b2e8a3abb59d53b14219c3d5c383f3a242aac3abf2745389923"
        "783fc7fe1d397643633b"))
    assert output.buffer_name == "label" and output.process_type == hm.REQUEST_TYPE
    assert not output.is_last and output.number_of_values == 10
    assert len(output.values) == 10
    assert max(range(10), key=lambda i: output.values[i]) == 7
    assert output.values[7] == pytest.approx(0.9692931771278381)
