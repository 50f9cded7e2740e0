"""datadrop's RecordIO-protobuf writer and reader, checked against protobuf classes built at run
time from the Record schema (tests/fixtures/record.proto) by the `protobuf` package, and against
the framing SageMaker's SDK writes (magic, length, payload, zero padding to 4 bytes)."""

from __future__ import annotations

import csv
import io
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datadrop import recordio
from datadrop.recordio import MAGIC, RecordIOError, csv_to_recordio, frame, iter_payloads, read_records, write_records
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PENGUINS = Path(__file__).resolve().parents[2] / "examples" / "penguins" / "penguins.csv"

_SCALARS = {
    "float": descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT,
    "double": descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
    "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    "uint64": descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
}
_LABELS = {
    "repeated": descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    "optional": descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    "required": descriptor_pb2.FieldDescriptorProto.LABEL_REQUIRED,
}


def _set_type(field: descriptor_pb2.FieldDescriptorProto, type_name: str, package: str) -> None:
    if type_name in _SCALARS:
        field.type = _SCALARS[type_name]  # type: ignore[assignment]
    else:
        field.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
        field.type_name = f".{package}.{type_name}"


def _file_descriptor(proto_text: str) -> descriptor_pb2.FileDescriptorProto:
    """The FileDescriptorProto of a proto2 file using record.proto's subset of the language (messages,
    scalar and message fields, [packed = true], oneof, map<string, Message>)."""
    text = re.sub(r"//[^\n]*", "", proto_text)
    file = descriptor_pb2.FileDescriptorProto(name="record.proto", syntax="proto2")
    file.package = re.search(r"package\s+([\w.]+)\s*;", text).group(1)  # type: ignore[union-attr]
    for name, body in re.findall(r"message\s+(\w+)\s*\{((?:[^{}]|\{[^{}]*\})*)\}", text):
        message = file.message_type.add(name=name)
        oneofs = {oneof: body_ for oneof, body_ in re.findall(r"oneof\s+(\w+)\s*\{([^{}]*)\}", body)}
        for index, (oneof, oneof_body) in enumerate(oneofs.items()):
            message.oneof_decl.add(name=oneof)
            for type_name, field_name, number in re.findall(r"(\w+)\s+(\w+)\s*=\s*(\d+)\s*;", oneof_body):
                field = message.field.add(name=field_name, number=int(number), oneof_index=index)
                field.label = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
                _set_type(field, type_name, file.package)
        body_outside = re.sub(r"oneof\s+\w+\s*\{[^{}]*\}", "", body)
        for key_type, value_type, field_name, number in re.findall(
            r"map<\s*(\w+)\s*,\s*(\w+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;", body_outside
        ):
            entry_name = "".join(part.capitalize() for part in field_name.split("_")) + "Entry"
            entry = message.nested_type.add(name=entry_name)
            entry.options.map_entry = True
            key = entry.field.add(name="key", number=1, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
            _set_type(key, key_type, file.package)
            value = entry.field.add(name="value", number=2, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
            _set_type(value, value_type, file.package)
            field = message.field.add(
                name=field_name, number=int(number), label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
            )
            field.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
            field.type_name = f".{file.package}.{name}.{entry_name}"
        for label, type_name, field_name, number, options in re.findall(
            r"(repeated|optional|required)\s+(\w+)\s+(\w+)\s*=\s*(\d+)\s*(\[[^\]]*\])?\s*;", body_outside
        ):
            field = message.field.add(name=field_name, number=int(number), label=_LABELS[label])
            _set_type(field, type_name, file.package)
            if re.search(r"packed\s*=\s*true", options):
                field.options.packed = True
    return file


@pytest.fixture(scope="module")
def record_class() -> Any:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor((FIXTURES / "record.proto").read_text()))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("aialgs.data.Record"))


def _sdk_style_payloads(data: bytes) -> list[bytes]:
    """The SDK's read_recordio: magic, length, payload, padding; no continuation flags (asserted 0)."""
    payloads, position = [], 0
    while position < len(data):
        magic, length = struct.unpack_from("<II", data, position)
        assert magic == MAGIC
        assert length >> 29 == 0, "continuation flag set"
        payloads.append(data[position + 8 : position + 8 + length])
        padding = data[position + 8 + length : position + 8 + length + (-length % 4)]
        assert padding == b"\0" * (-length % 4)
        position += 8 + length + (-length % 4)
    return payloads


def _penguins_csv() -> str:
    """penguins.csv encoded by hand as datadrop's training CSV: species index first, then island
    index, the four measurements (NA filled with the column mean), sex (-1 when NA) and year."""
    with PENGUINS.open() as handle:
        rows = list(csv.DictReader(handle))
    species = sorted({r["species"] for r in rows})
    islands = sorted({r["island"] for r in rows})
    measures = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    means = {m: sum(float(r[m]) for r in rows if r[m] != "NA") / sum(r[m] != "NA" for r in rows) for m in measures}
    lines = []
    for r in rows:
        values = [species.index(r["species"]), islands.index(r["island"])]
        values += [float(r[m]) if r[m] != "NA" else means[m] for m in measures]
        values += [{"female": 0, "male": 1}.get(r["sex"], -1), int(r["year"])]
        lines.append(",".join(repr(float(v)) for v in values))
    return "\n".join(lines) + "\n"


def test_penguins_csv_decodes_with_protobuf_to_the_csv_numbers_as_float32(record_class: Any) -> None:
    text = _penguins_csv()
    out = io.BytesIO()
    count = csv_to_recordio(io.StringIO(text), out)
    expected = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64).astype(np.float32)
    assert count == len(expected) == 344
    payloads = _sdk_style_payloads(out.getvalue())
    assert len(payloads) == count
    for payload, row in zip(payloads, expected, strict=True):
        record = record_class()
        record.ParseFromString(payload)
        assert set(record.features) == {"values"} and set(record.label) == {"values"}
        assert record.features["values"].WhichOneof("value") == "float32_tensor"
        assert record.label["values"].WhichOneof("value") == "float32_tensor"
        tensor = record.features["values"].float32_tensor
        assert not tensor.keys and not tensor.shape  # dense, as write_numpy_to_dense_tensor writes it
        np.testing.assert_array_equal(np.array(tensor.values, dtype=np.float32), row[1:])
        assert list(record.label["values"].float32_tensor.values) == [row[0]]
    labels, features = zip(*read_records(out.getvalue()), strict=True)
    np.testing.assert_array_equal(np.array(features, dtype=np.float32), expected[:, 1:])
    np.testing.assert_array_equal(np.array(labels, dtype=np.float32), expected[:, 0])


def test_awkward_numbers_round_to_float32_like_numpy(record_class: Any) -> None:
    fields = ["0.1", "-0.0", "1e-45", "1.17549435e-38", "3.4028234e38", "-123456789.123456789", " 7 ", "1_000"]
    out = io.BytesIO()
    csv_to_recordio([",".join(["1", *fields]) + "\n"], out)
    record = record_class()
    record.ParseFromString(_sdk_style_payloads(out.getvalue())[0])
    decoded = np.array(record.features["values"].float32_tensor.values, dtype=np.float32)
    expected = np.array([float(f) for f in fields], dtype=np.float64).astype(np.float32)
    assert decoded.tobytes() == expected.tobytes()  # bit for bit, -0.0 and the subnormal included


def test_protobuf_written_records_read_back_including_sparse_and_float64(record_class: Any) -> None:
    """What the SDK's writers produce (dense Float32, sparse with keys+shape, Float64, no label)."""
    dense, sparse, double, unlabelled = record_class(), record_class(), record_class(), record_class()
    dense.features["values"].float32_tensor.values.extend([1.5, -2.0, 0.25])
    dense.label["values"].float32_tensor.values.extend([1.0])
    sparse.features["values"].float32_tensor.values.extend([4.0, 5.0])
    sparse.features["values"].float32_tensor.keys.extend([0, 3])
    sparse.features["values"].float32_tensor.shape.extend([5])
    sparse.label["values"].float32_tensor.values.extend([0.0])
    sparse.uid = "row-2"
    double.features["values"].float64_tensor.values.extend([0.1, 2.0])
    double.label["values"].float64_tensor.values.extend([3.5])
    unlabelled.features["values"].float32_tensor.values.extend([9.0])
    data = b"".join(frame(r.SerializeToString()) for r in (dense, sparse, double, unlabelled))
    assert list(read_records(data)) == [
        (1.0, [1.5, -2.0, 0.25]),
        (0.0, [4.0, 0.0, 0.0, 5.0, 0.0]),
        (3.5, [0.1, 2.0]),
        (None, [9.0]),
    ]


def test_write_records_without_label_and_the_response_shape(record_class: Any) -> None:
    out = io.BytesIO()
    assert write_records([(None, [1.0, 2.0]), (0.0, [])], out) == 2
    first, second = (record_class.FromString(p) for p in _sdk_style_payloads(out.getvalue()))
    assert list(first.label) == [] and list(first.features["values"].float32_tensor.values) == [1.0, 2.0]
    assert list(second.features["values"].float32_tensor.values) == [] and second.features["values"].HasField("float32_tensor")
    response = record_class.FromString(recordio.encode_record(None, {"score": [0.75], "predicted_label": [1.0]}))
    assert list(response.features) == []
    assert list(response.label["score"].float32_tensor.values) == [0.75]
    assert recordio.decode_record(response.SerializeToString()) == ({}, {"score": [0.75], "predicted_label": [1.0]})


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 6, 7, 8])
def test_padding_to_four_bytes(size: int) -> None:
    payload = bytes(range(1, size + 1))
    framed = frame(payload)
    assert framed[:4] == struct.pack("<I", MAGIC) == b"\x0a\x23\xd7\xce"
    assert struct.unpack("<I", framed[4:8])[0] == size
    assert len(framed) % 4 == 0 and len(framed) == 8 + size + (-size % 4)
    assert framed[8 + size :] == b"\0" * (-size % 4)
    assert list(iter_payloads(framed)) == [payload]


def test_many_records_round_trip() -> None:
    rng = np.random.default_rng(7)
    rows = [(float(i % 2), rng.normal(size=int(rng.integers(1, 12))).astype(np.float32).tolist()) for i in range(5000)]
    out = io.BytesIO()
    assert write_records(rows, out) == 5000
    assert list(read_records(out.getvalue())) == rows


def test_an_aligned_magic_word_inside_a_record_is_split_as_dmlc_does() -> None:
    magic = struct.pack("<I", MAGIC)
    payload = b"abcd" + magic + b"efgh" + magic + b"xy"
    framed = frame(payload)
    words = []
    position = 0
    while position < len(framed):
        _, word = struct.unpack_from("<II", framed, position)
        words.append((word >> 29, word & ((1 << 29) - 1)))
        position += 8 + (word & ((1 << 29) - 1)) + (-(word & ((1 << 29) - 1)) % 4)
    assert words == [(1, 4), (2, 4), (3, 2)]  # first, middle, last; the magic words are dropped
    assert list(iter_payloads(framed)) == [payload]
    unaligned = b"ab" + magic + b"cd"
    assert struct.unpack_from("<I", frame(unaligned), 4)[0] == len(unaligned)  # not aligned: one whole record


def test_a_feature_equal_to_the_magic_word_survives(record_class: Any) -> None:
    magic_float = struct.unpack("<f", struct.pack("<I", MAGIC))[0]
    for lead in range(4):  # some number of leading features puts the value at an aligned offset
        features = [1.0] * lead + [magic_float, 2.0]
        payload = recordio.encode_record(features, {"values": [1.0]})
        offset = payload.find(struct.pack("<I", MAGIC))
        if offset % 4 == 0:
            break
    else:
        pytest.fail("no aligned layout found")
    out = io.BytesIO()
    write_records([(1.0, features)], out)
    assert struct.unpack_from("<I", out.getvalue(), 4)[0] >> 29 == 1  # split
    ((label, decoded),) = read_records(out.getvalue())
    assert (label, decoded) == (1.0, features)
    assert list(record_class.FromString(next(iter_payloads(out.getvalue()))).features["values"].float32_tensor.values) == features


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["1,2,3\n", "0,,3\n"], "empty feature at line 2, column 2"),
        ([",2,3\n"], "empty label at line 1, column 1"),
        (["1,2,abc\n"], "non-numeric feature 'abc' at line 1, column 3"),
        (["1,2,nan\n"], "non-finite feature 'nan' at line 1, column 3"),
        (["1,2,3\n", "1,2\n"], "line 2 has 2 fields, earlier lines 3"),
        (["1\n"], "line 1 has 1 field(s)"),
        (["1,1e39\n"], "out of float32 range"),
    ],
)
def test_bad_csv_is_rejected_with_the_place(lines: list[str], message: str) -> None:
    with pytest.raises(RecordIOError, match=re.escape(message)):
        csv_to_recordio(lines, io.BytesIO())


def test_blank_lines_are_skipped() -> None:
    out = io.BytesIO()
    assert csv_to_recordio(["1,2\n", "\n", "0,3\n"], out) == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00\x00\x00\x04\x00\x00\x00abcd", "bad RecordIO magic"),
        (frame(b"abcdefgh")[:10], "truncated RecordIO record"),
        (frame(b"abcd")[:6], "truncated RecordIO header"),
        (struct.pack("<II", MAGIC, (1 << 29) | 0), "ends inside a multi-part record"),
        (struct.pack("<II", MAGIC, (3 << 29) | 0), "continuation at byte 0 without a first part"),
    ],
)
def test_bad_framing_is_rejected(data: bytes, message: str) -> None:
    with pytest.raises(RecordIOError, match=message):
        list(iter_payloads(data))


def test_a_record_without_features_is_rejected() -> None:
    with pytest.raises(RecordIOError, match="no features"):
        list(read_records(frame(recordio.encode_record(None, {"values": [1.0]}))))
