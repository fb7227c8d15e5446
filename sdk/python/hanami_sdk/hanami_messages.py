"""Hand-written protobuf (proto3) codec for the three websocket messages of Hanami.

The schema (``hanami_messages.proto3`` of the original project)::

    enum ClusterProcessType { REQUEST_TYPE = 0; TRAIN_TYPE = 1; }
    enum TargetBufferType { INPUT_BUFFER_TYPE = 0; OUTPUT_BUFFER_TYPE = 1;
                            EXPECTED_BUFFER_TYPE = 2; }
    message ClusterIO_Message {
        string bufferName = 1; bool isLast = 2; ClusterProcessType processType = 3;
        TargetBufferType targetBufferType = 4; uint64 numberOfValues = 5;
        repeated float values = 6 [packed=true];
    }
    message FileUpload_Message { uint64 position = 1; bytes data = 2; }
    message FileUploadResponse_Message { bool success = 1; string errorMessage = 2; }

Encoding follows proto3: fields holding their default value (0, false, empty) are left out,
``values`` is written packed. Decoding accepts what any proto3 writer may produce: fields in
any order, repeated scalars (the last one wins), packed and unpacked ``values``, and unknown
fields of every wire type, which are skipped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterator, List, Tuple, Union

# Enum ClusterProcessType
REQUEST_TYPE = 0
TRAIN_TYPE = 1

# Enum TargetBufferType
INPUT_BUFFER_TYPE = 0
OUTPUT_BUFFER_TYPE = 1
EXPECTED_BUFFER_TYPE = 2

# Wire types
WIRE_VARINT = 0
WIRE_FIXED64 = 1
WIRE_LENGTH_DELIMITED = 2
WIRE_FIXED32 = 5

_UINT64_MAX = (1 << 64) - 1


class DecodeError(ValueError):
    """Raised when bytes are not a valid encoding of the expected message."""


# --------------------------------------------------------------------------------------------
# primitives


def encode_varint(value: int) -> bytes:
    """Encodes an unsigned integer (0 .. 2^64-1) as a base-128 varint.

    Negative numbers (as int32/int64 would need) are written in two's complement over
    64 bits, i.e. as ten bytes, like every protobuf implementation does.
    """
    if value < 0:
        value += 1 << 64
    if value < 0 or value > _UINT64_MAX:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes, pos: int) -> Tuple[int, int]:
    """Reads a varint at ``pos``; returns ``(value, position after it)``.

    At most ten bytes are read; the value is truncated to 64 bits.
    """
    result = 0
    shift = 0
    for i in range(10):
        if pos >= len(data):
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & _UINT64_MAX, pos
        shift += 7
    raise DecodeError("varint longer than 10 bytes")


def _key(field_number: int, wire_type: int) -> bytes:
    return encode_varint((field_number << 3) | wire_type)


def _length_delimited(field_number: int, payload: bytes) -> bytes:
    return _key(field_number, WIRE_LENGTH_DELIMITED) + encode_varint(len(payload)) + payload


def _check_uint64(name: str, value: int) -> int:
    value = int(value)
    if value < 0 or value > _UINT64_MAX:
        raise ValueError(f"{name} must be in 0..2^64-1, got {value}")
    return value


def iter_fields(data: bytes) -> Iterator[Tuple[int, int, Union[int, bytes]]]:
    """Yields ``(field_number, wire_type, value)`` for every field of a message.

    ``value`` is an ``int`` for varint, fixed32 and fixed64 fields and ``bytes`` for
    length-delimited fields. Wire types 3 and 4 (groups) and field number 0 are rejected.
    """
    pos = 0
    data = bytes(data)
    while pos < len(data):
        key, pos = decode_varint(data, pos)
        field_number, wire_type = key >> 3, key & 7
        if field_number == 0:
            raise DecodeError("field number 0")
        if wire_type == WIRE_VARINT:
            value, pos = decode_varint(data, pos)
            yield field_number, wire_type, value
        elif wire_type == WIRE_FIXED64:
            if pos + 8 > len(data):
                raise DecodeError("truncated fixed64 field")
            yield field_number, wire_type, int.from_bytes(data[pos:pos + 8], "little")
            pos += 8
        elif wire_type == WIRE_LENGTH_DELIMITED:
            length, pos = decode_varint(data, pos)
            if pos + length > len(data):
                raise DecodeError("truncated length-delimited field")
            yield field_number, wire_type, data[pos:pos + length]
            pos += length
        elif wire_type == WIRE_FIXED32:
            if pos + 4 > len(data):
                raise DecodeError("truncated fixed32 field")
            yield field_number, wire_type, int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
        else:
            raise DecodeError(f"unsupported wire type {wire_type}")


def _expect(wire_type: int, expected: int, name: str) -> None:
    if wire_type != expected:
        raise DecodeError(f"field {name} has wire type {wire_type}, expected {expected}")


def _varint_field(wire_type: int, value: Union[int, bytes], name: str) -> int:
    _expect(wire_type, WIRE_VARINT, name)
    assert isinstance(value, int)
    return value


def _bytes_field(wire_type: int, value: Union[int, bytes], name: str) -> bytes:
    _expect(wire_type, WIRE_LENGTH_DELIMITED, name)
    assert isinstance(value, bytes)
    return value


def _to_int32(value: int) -> int:
    """Interprets a varint as proto3 enum (int32) value."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _utf8(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError(f"field {name} is not valid UTF-8") from e


# --------------------------------------------------------------------------------------------
# messages


@dataclass
class FileUploadMessage:
    """``FileUpload_Message``: one chunk of a file, written at byte offset ``position``."""

    position: int = 0
    data: bytes = b""

    def encode(self) -> bytes:
        """Serializes the message."""
        out = bytearray()
        position = _check_uint64("position", self.position)
        if position:
            out += _key(1, WIRE_VARINT) + encode_varint(position)
        if self.data:
            out += _length_delimited(2, bytes(self.data))
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> "FileUploadMessage":
        """Parses a serialized message."""
        msg = cls()
        for number, wire_type, value in iter_fields(data):
            if number == 1:
                msg.position = _varint_field(wire_type, value, "position")
            elif number == 2:
                msg.data = _bytes_field(wire_type, value, "data")
        return msg


@dataclass
class FileUploadResponseMessage:
    """``FileUploadResponse_Message``: the server's answer to one upload chunk."""

    success: bool = False
    error_message: str = ""

    def encode(self) -> bytes:
        """Serializes the message."""
        out = bytearray()
        if self.success:
            out += _key(1, WIRE_VARINT) + b"\x01"
        if self.error_message:
            out += _length_delimited(2, self.error_message.encode("utf-8"))
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> "FileUploadResponseMessage":
        """Parses a serialized message."""
        msg = cls()
        for number, wire_type, value in iter_fields(data):
            if number == 1:
                msg.success = bool(_varint_field(wire_type, value, "success"))
            elif number == 2:
                msg.error_message = _utf8(_bytes_field(wire_type, value, "errorMessage"),
                                          "errorMessage")
        return msg


@dataclass
class ClusterIOMessage:
    """``ClusterIO_Message``: values for or from one input/output of a cluster (direct IO)."""

    buffer_name: str = ""
    is_last: bool = False
    process_type: int = REQUEST_TYPE
    target_buffer_type: int = INPUT_BUFFER_TYPE
    number_of_values: int = 0
    values: List[float] = field(default_factory=list)

    def encode(self) -> bytes:
        """Serializes the message (``values`` packed, defaults left out)."""
        out = bytearray()
        if self.buffer_name:
            out += _length_delimited(1, self.buffer_name.encode("utf-8"))
        if self.is_last:
            out += _key(2, WIRE_VARINT) + b"\x01"
        if self.process_type:
            out += _key(3, WIRE_VARINT) + encode_varint(int(self.process_type))
        if self.target_buffer_type:
            out += _key(4, WIRE_VARINT) + encode_varint(int(self.target_buffer_type))
        number = _check_uint64("number_of_values", self.number_of_values)
        if number:
            out += _key(5, WIRE_VARINT) + encode_varint(number)
        if len(self.values):
            packed = struct.pack(f"<{len(self.values)}f", *(float(v) for v in self.values))
            out += _length_delimited(6, packed)
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> "ClusterIOMessage":
        """Parses a serialized message."""
        msg = cls()
        for number, wire_type, value in iter_fields(data):
            if number == 1:
                msg.buffer_name = _utf8(_bytes_field(wire_type, value, "bufferName"),
                                        "bufferName")
            elif number == 2:
                msg.is_last = bool(_varint_field(wire_type, value, "isLast"))
            elif number == 3:
                msg.process_type = _to_int32(_varint_field(wire_type, value, "processType"))
            elif number == 4:
                msg.target_buffer_type = _to_int32(
                    _varint_field(wire_type, value, "targetBufferType"))
            elif number == 5:
                msg.number_of_values = _varint_field(wire_type, value, "numberOfValues")
            elif number == 6:
                if wire_type == WIRE_LENGTH_DELIMITED:
                    raw = _bytes_field(wire_type, value, "values")
                    if len(raw) % 4:
                        raise DecodeError("packed float field length is not a multiple of 4")
                    msg.values.extend(struct.unpack(f"<{len(raw) // 4}f", raw))
                elif wire_type == WIRE_FIXED32:
                    assert isinstance(value, int)
                    msg.values.append(struct.unpack("<f", value.to_bytes(4, "little"))[0])
                else:
                    raise DecodeError(f"field values has wire type {wire_type}")
        return msg
