"""RecordIO-protobuf, the training (and inference) format of SageMaker's first-party algorithms,
written and read with the standard library only (this runs in Lambda: no protobuf package).

Two layers:

* The protobuf message is ``aialgs.data.Record`` from SageMaker's published ``record.proto``
  (aws/sagemaker-python-sdk, src/sagemaker/amazon/record.proto, SDK v2): ``features`` (field 1) and
  ``label`` (field 2) are ``map<string, Value>``; a ``Value`` holds a ``Float32Tensor`` in field 2
  (``float64_tensor`` 3, ``int32_tensor`` 7); a ``Float32Tensor`` has packed ``values`` (1, float),
  ``keys`` (2, uint64, sparse only) and ``shape`` (3, uint64). The SDK's ``write_numpy_to_dense_tensor``
  (src/sagemaker/serializer_utils.py, SDK v2) writes one Record per row: the row under
  ``features["values"]`` as a dense Float32Tensor and the label under ``label["values"]``, one value.
  We hand-encode the protobuf wire format (varint keys, length-delimited submessages, packed floats).

* The framing is MXNet's / dmlc-core's RecordIO (dmlc-core include/dmlc/recordio.h and
  src/recordio.cc): each record is the magic word 0xced7230a, a length word whose upper 3 bits are a
  continuation flag (0 whole record, 1 first part, 2 middle part, 3 last part) and lower 29 bits the
  part's length, the part's bytes, and zero padding to a multiple of 4. Both words are little-endian
  (the SDK packs them with ``struct.pack("I")`` on little-endian hosts). dmlc's writer splits a record
  wherever the magic word appears 4-byte aligned inside the payload (dropping those 4 bytes, which the
  reader puts back between the parts) so that a reader seeking to a record boundary by scanning for
  the magic never lands inside a record; we do the same. The SDK's own writer never splits, and a
  record with no aligned magic inside is written identically by both.

datadrop's training CSV has no missing values when the recipe wrote it: every numeric feature is
imputed with the recipe's ``fill`` and every categorical/boolean one with -1.0 (`datadrop.recipe`).
Factorization Machines cannot take missing values, and filling an empty field with 0 here would
train on numbers the serving path never sends (it sends the recipe's fill), so `csv_to_recordio`
rejects an empty or non-finite field with the line and column instead of guessing.
"""

from __future__ import annotations

import csv
import math
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import BinaryIO

__all__ = [
    "MAGIC",
    "RecordIOError",
    "csv_to_recordio",
    "decode_record",
    "encode_record",
    "frame",
    "iter_payloads",
    "read_records",
    "write_records",
]

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_BITS = 29
_MAX_PART_LENGTH = (1 << _LENGTH_BITS) - 1
_WHOLE, _FIRST, _MIDDLE, _LAST = 0, 1, 2, 3

# Protobuf wire types and the record.proto field numbers we use.
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5
_RECORD_FEATURES, _RECORD_LABEL = 1, 2
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_VALUE_FLOAT32, _VALUE_FLOAT64, _VALUE_INT32, _VALUE_BYTES = 2, 3, 7, 9
_TENSOR_VALUES, _TENSOR_KEYS, _TENSOR_SHAPE = 1, 2, 3
VALUES_KEY = "values"  # the key SageMaker's algorithms read a record's vector (and its label) under


class RecordIOError(ValueError):
    """Bytes that are not RecordIO-protobuf as SageMaker's algorithms read it, or rows that cannot become it."""


# ---------------------------------------------------------------- protobuf wire encoding


def _varint(number: int) -> bytes:
    if number < 0:
        raise RecordIOError(f"cannot encode negative varint {number}")
    out = bytearray()
    while True:
        low = number & 0x7F
        number >>= 7
        if number:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _tag(field: int, wire_type: int) -> bytes:
    return _varint((field << 3) | wire_type)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _tag(field, _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def _packed_float32(values: Sequence[float]) -> bytes:
    try:
        return struct.pack(f"<{len(values)}f", *values)
    except OverflowError:
        big = next(v for v in values if math.isfinite(v) and abs(v) > 3.4028234663852886e38)
        raise RecordIOError(f"{big!r} is out of float32 range (RecordIO-protobuf tensors here are Float32)") from None
    except struct.error as error:
        raise RecordIOError(f"not a float: {error}") from None


def _float32_value(values: Sequence[float]) -> bytes:
    """A ``Value`` message holding a dense ``Float32Tensor`` (no keys, no shape, as the SDK writes it)."""
    tensor = _length_delimited(_TENSOR_VALUES, _packed_float32(values)) if len(values) else b""
    return _length_delimited(_VALUE_FLOAT32, tensor)


def _map_entry(field: int, key: str, value_message: bytes) -> bytes:
    entry = _length_delimited(_ENTRY_KEY, key.encode("utf-8")) + _length_delimited(_ENTRY_VALUE, value_message)
    return _length_delimited(field, entry)


def encode_record(features: Sequence[float] | None, label: Mapping[str, Sequence[float]] | None = None) -> bytes:
    """One serialized ``Record``: ``features`` (if given) under ``features["values"]``, each label
    entry under its own key, all as dense Float32Tensors."""
    parts: list[bytes] = []
    if features is not None:
        parts.append(_map_entry(_RECORD_FEATURES, VALUES_KEY, _float32_value(features)))
    for key, values in (label or {}).items():
        parts.append(_map_entry(_RECORD_LABEL, key, _float32_value(values)))
    return b"".join(parts)


# ---------------------------------------------------------------- protobuf wire decoding


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise RecordIOError("truncated varint in protobuf record")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise RecordIOError("varint longer than 10 bytes in protobuf record")


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value): ints for varint/fixed fields, bytes for length-delimited ones."""
    position = 0
    while position < len(data):
        tag, position = _read_varint(data, position)
        field, wire_type = tag >> 3, tag & 7
        value: int | bytes
        if wire_type == _VARINT:
            value, position = _read_varint(data, position)
        elif wire_type == _LENGTH_DELIMITED:
            length, position = _read_varint(data, position)
            if position + length > len(data):
                raise RecordIOError("truncated length-delimited field in protobuf record")
            value, position = data[position : position + length], position + length
        elif wire_type == _FIXED32:
            value, position = int.from_bytes(data[position : position + 4], "little"), position + 4
        elif wire_type == _FIXED64:
            value, position = int.from_bytes(data[position : position + 8], "little"), position + 8
        else:
            raise RecordIOError(f"unsupported protobuf wire type {wire_type} (field {field})")
        if position > len(data):
            raise RecordIOError("truncated fixed-width field in protobuf record")
        yield field, wire_type, value


def _varints(data: bytes) -> list[int]:
    out, position = [], 0
    while position < len(data):
        number, position = _read_varint(data, position)
        out.append(number)
    return out


def _tensor(data: bytes, kind: int) -> list[float]:
    """A Float32/Float64/Int32 tensor as a dense list (sparse ones expanded with their shape)."""
    values: list[float] = []
    keys: list[int] = []
    shape: list[int] = []
    for field, wire_type, value in _fields(data):
        if field == _TENSOR_VALUES:
            if kind == _VALUE_FLOAT32:
                if wire_type == _LENGTH_DELIMITED:
                    assert isinstance(value, bytes)
                    if len(value) % 4:
                        raise RecordIOError("packed float32 values not a multiple of 4 bytes")
                    values.extend(struct.unpack(f"<{len(value) // 4}f", value))
                else:
                    assert isinstance(value, int)
                    values.append(struct.unpack("<f", value.to_bytes(4, "little"))[0])
            elif kind == _VALUE_FLOAT64:
                if wire_type == _LENGTH_DELIMITED:
                    assert isinstance(value, bytes)
                    values.extend(struct.unpack(f"<{len(value) // 8}d", value))
                else:
                    assert isinstance(value, int)
                    values.append(struct.unpack("<d", value.to_bytes(8, "little"))[0])
            else:  # int32, varint-encoded (negative numbers as 10-byte two's complement)
                ints = _varints(value) if isinstance(value, bytes) else [value]
                values.extend(float(i - (1 << 64) if i >= 1 << 63 else i) for i in ints)
        elif field in (_TENSOR_KEYS, _TENSOR_SHAPE):
            numbers = _varints(value) if isinstance(value, bytes) else [value]
            (keys if field == _TENSOR_KEYS else shape).extend(numbers)
    if not keys:
        return values
    if not shape:
        raise RecordIOError("sparse tensor (keys given) without a shape")
    if len(keys) != len(values):
        raise RecordIOError(f"sparse tensor with {len(keys)} keys but {len(values)} values")
    size = math.prod(shape)
    dense = [0.0] * size
    for key, number in zip(keys, values, strict=True):
        if key >= size:
            raise RecordIOError(f"sparse tensor key {key} outside its shape {shape}")
        dense[key] = number
    return dense


def _value(data: bytes) -> list[float]:
    for field, _wire_type, value in _fields(data):
        if field in (_VALUE_FLOAT32, _VALUE_FLOAT64, _VALUE_INT32):
            assert isinstance(value, bytes)
            return _tensor(value, field)
        if field == _VALUE_BYTES:
            raise RecordIOError("Bytes values are not numeric tensors")
    return []


def decode_record(payload: bytes) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """A serialized ``Record`` as (features map, label map), each tensor a dense list of floats."""
    features: dict[str, list[float]] = {}
    label: dict[str, list[float]] = {}
    for field, _wire_type, value in _fields(payload):
        if field not in (_RECORD_FEATURES, _RECORD_LABEL):
            continue  # uid, metadata, configuration: not data
        assert isinstance(value, bytes)
        key, tensor = "", b""
        for entry_field, _entry_wire, entry_value in _fields(value):
            assert isinstance(entry_value, bytes)
            if entry_field == _ENTRY_KEY:
                key = entry_value.decode("utf-8")
            elif entry_field == _ENTRY_VALUE:
                tensor = entry_value
        (features if field == _RECORD_FEATURES else label)[key] = _value(tensor)
    return features, label


# ---------------------------------------------------------------- RecordIO framing


def _header(flag: int, length: int) -> bytes:
    return _MAGIC_BYTES + struct.pack("<I", (flag << _LENGTH_BITS) | length)


def frame(payload: bytes) -> bytes:
    """One record framed as dmlc's RecordIOWriter::WriteRecord does (split at aligned magic words, padded)."""
    if len(payload) > _MAX_PART_LENGTH:
        raise RecordIOError(f"record of {len(payload)} bytes: RecordIO records must be under 2^29 bytes")
    parts: list[bytes] = []
    start = 0
    search = 0
    while True:
        found = payload.find(_MAGIC_BYTES, search)
        if found < 0 or found + 4 > len(payload):
            break
        if found % 4:
            search = found + 1
            continue
        parts.append(_header(_FIRST if start == 0 else _MIDDLE, found - start) + payload[start:found])
        start = search = found + 4
    rest = payload[start:]
    parts.append(_header(_LAST if start else _WHOLE, len(rest)) + rest + b"\0" * (-len(rest) % 4))
    return b"".join(parts)


def iter_payloads(data: bytes) -> Iterator[bytes]:
    """The records of a RecordIO byte string (continuation parts joined back with the magic word)."""
    position = 0
    pending: bytearray | None = None
    while position < len(data):
        if position + 8 > len(data):
            raise RecordIOError(f"truncated RecordIO header at byte {position}")
        magic, word = struct.unpack_from("<II", data, position)
        if magic != MAGIC:
            raise RecordIOError(f"bad RecordIO magic {magic:#010x} at byte {position} (expected {MAGIC:#010x})")
        flag, length = word >> _LENGTH_BITS, word & _MAX_PART_LENGTH
        start = position + 8
        position = start + length + (-length % 4)
        if start + length > len(data):
            raise RecordIOError(f"truncated RecordIO record at byte {start - 8}: {length} bytes announced")
        part = data[start : start + length]
        if flag == _WHOLE:
            if pending is not None:
                raise RecordIOError(f"RecordIO record at byte {start - 8} interrupts a multi-part record")
            yield part
        elif flag == _FIRST:
            if pending is not None:
                raise RecordIOError(f"RecordIO record at byte {start - 8} interrupts a multi-part record")
            pending = bytearray(part)
        elif flag in (_MIDDLE, _LAST):
            if pending is None:
                raise RecordIOError(f"RecordIO continuation at byte {start - 8} without a first part")
            pending += _MAGIC_BYTES + part
            if flag == _LAST:
                yield bytes(pending)
                pending = None
        else:
            raise RecordIOError(f"bad RecordIO continuation flag {flag} at byte {start - 8}")
    if pending is not None:
        raise RecordIOError("RecordIO data ends inside a multi-part record")


# ---------------------------------------------------------------- rows <-> files


def write_records(rows: Iterable[tuple[float | None, Sequence[float]]], out: BinaryIO) -> int:
    """Write (label, features) rows as RecordIO-protobuf, one Record per row, as the SDK's
    ``write_numpy_to_dense_tensor`` lays them out (label None: no label map). Returns the row count."""
    count = 0
    for label, features in rows:
        out.write(frame(encode_record(features, None if label is None else {VALUES_KEY: [label]})))
        count += 1
    return count


def read_records(data: bytes) -> Iterator[tuple[float | None, list[float]]]:
    """(label, features) per Record: ``label["values"]``'s single value (None without one) and
    ``features["values"]`` as a dense list."""
    for index, payload in enumerate(iter_payloads(data)):
        features, label = decode_record(payload)
        if VALUES_KEY not in features:
            raise RecordIOError(f"record {index} has no features[{VALUES_KEY!r}] tensor")
        label_values = label.get(VALUES_KEY)
        if label_values is not None and len(label_values) != 1:
            raise RecordIOError(f"record {index} has {len(label_values)} label values; expected one")
        yield (None if label_values is None else label_values[0]), features[VALUES_KEY]


def _csv_number(text: str, line: int, column: int) -> float:
    stripped = text.strip()
    what = "label" if column == 1 else "feature"
    if not stripped:
        raise RecordIOError(
            f"empty {what} at line {line}, column {column}: RecordIO-protobuf for Factorization Machines "
            "cannot hold missing values (datadrop's recipe imputes every feature; this file was not written by it)"
        )
    try:
        number = float(stripped)
    except ValueError:
        raise RecordIOError(f"non-numeric {what} {stripped!r} at line {line}, column {column}") from None
    if not math.isfinite(number):
        raise RecordIOError(f"non-finite {what} {stripped!r} at line {line}, column {column}")
    return number


def _csv_rows(csv_lines: Iterable[str]) -> Iterator[tuple[float, list[float]]]:
    width: int | None = None
    for line, fields in enumerate(csv.reader(csv_lines), start=1):
        if not fields:
            continue  # a blank line
        if len(fields) < 2:
            raise RecordIOError(f"line {line} has {len(fields)} field(s): expected the label then at least one feature")
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            raise RecordIOError(f"line {line} has {len(fields)} fields, earlier lines {width}")
        numbers = [_csv_number(text, line, column) for column, text in enumerate(fields, start=1)]
        yield numbers[0], numbers[1:]


def csv_to_recordio(csv_lines: Iterable[str], out: BinaryIO) -> int:
    """datadrop's training CSV (headerless, label first, numeric features) as RecordIO-protobuf with
    Float32 features and label. Empty, non-numeric or non-finite fields and ragged rows raise
    RecordIOError naming the line and column (see the module docstring). Returns the row count."""
    return write_records(_csv_rows(csv_lines), out)
