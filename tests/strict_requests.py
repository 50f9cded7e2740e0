"""Every AWS request the tests make is checked against the service model, as AWS would check it.

botocore validates types and required members but not a string's `pattern` or maximum length,
enums, or the sizes of lists and maps; moto checks none of them either. SageMaker does, on the
server: a CreateTrial `DisplayName` with a space passes botocore and moto and fails on AWS. This
module checks those constraints on every request made through any boto3 client in the test
process (installed once, in tests/conftest.py) and fails the request with the rule it broke.

It also records each request with the Lambda function that made it (AWS_LAMBDA_FUNCTION_NAME,
which Lambda sets and the local runtime and the test harness set too), so the IAM parity test
can compare what each function really calls with what template.yaml grants it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import regex  # the service models use Java regexes (\p{L}, \p{Alnum}); the stdlib re has no \p
from botocore.client import BaseClient
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape


class RequestViolatesServiceModel(AssertionError):
    """A request AWS would reject with a ValidationException that botocore and moto let through."""


@dataclass(frozen=True)
class RecordedCall:
    function: str | None
    service: str  # the IAM service prefix (signing name): sagemaker-metrics signs as "sagemaker"
    operation: str
    versioned: bool  # S3 authorises a GetObject with a VersionId as s3:GetObjectVersion

    @property
    def iam_action(self) -> str:
        action = (
            "GetObjectVersion" if self.service == "s3" and self.operation == "GetObject" and self.versioned else self.operation
        )
        return f"{self.service}:{action}"


RECORDED: list[RecordedCall] = []

# Java's UTF-16 surrogate-pair range, as the models spell "any supplementary character".
_SURROGATE_PAIR_RANGE = r"\uD800\uDC00-\uDBFF\uDFFF"


@cache
def _compiled(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern.replace(_SURROGATE_PAIR_RANGE, r"\U00010000-\U0010FFFF"))


def violations(operation: OperationModel, params: dict[str, Any]) -> list[str]:
    """Every constraint of the operation's input shape that `params` breaks, as readable lines."""
    found: list[str] = []
    if operation.input_shape is not None:
        _check(operation.input_shape, params, operation.name, found)
    return found


def _check(shape: Shape, value: Any, path: str, found: list[str]) -> None:
    meta = shape.metadata
    if isinstance(shape, StructureShape):
        if isinstance(value, dict):
            for name, member in shape.members.items():
                if name in value and value[name] is not None:
                    _check(member, value[name], f"{path}.{name}", found)
        return
    if isinstance(shape, ListShape):
        if isinstance(value, (list, tuple)):
            _check_size(meta, len(value), path, "items", found)
            for index, item in enumerate(value):
                _check(shape.member, item, f"{path}[{index}]", found)
        return
    if isinstance(shape, MapShape):
        if isinstance(value, dict):
            _check_size(meta, len(value), path, "entries", found)
            for key, item in value.items():
                _check(shape.key, key, f"{path}<key {key!r}>", found)
                _check(shape.value, item, f"{path}[{key!r}]", found)
        return
    if shape.type_name == "string" and isinstance(value, str):
        _check_size(meta, len(value), path, "characters", found)
        if shape.enum and value not in shape.enum:
            found.append(f"{path}={value!r} is not one of {shape.enum}")
        pattern = meta.get("pattern")
        if pattern and not _compiled(pattern).fullmatch(value):
            found.append(f"{path}={value!r} does not match the pattern {pattern!r}")
        return
    if shape.type_name in ("integer", "long", "float", "double") and isinstance(value, (int, float)):
        if "min" in meta and value < meta["min"]:
            found.append(f"{path}={value} is below the minimum {meta['min']}")
        if "max" in meta and value > meta["max"]:
            found.append(f"{path}={value} is above the maximum {meta['max']}")
        return
    if shape.type_name == "blob" and isinstance(value, (bytes, str)):
        _check_size(meta, len(value), path, "bytes", found)


def _check_size(meta: dict[str, Any], size: int, path: str, unit: str, found: list[str]) -> None:
    if "min" in meta and size < meta["min"]:
        found.append(f"{path} has {size} {unit}; at least {meta['min']} are required")
    if "max" in meta and size > meta["max"]:
        found.append(f"{path} has {size} {unit}; at most {meta['max']} are allowed")


_original_make_api_call = BaseClient._make_api_call


def _strict_make_api_call(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
    service_model = self.meta.service_model
    operation = service_model.operation_model(operation_name)
    broken = violations(operation, api_params)
    if broken:
        raise RequestViolatesServiceModel(
            f"{service_model.service_name}.{operation_name}: AWS would reject this request:\n  " + "\n  ".join(broken)
        )
    signing_name = service_model.signing_name or service_model.endpoint_prefix
    RECORDED.append(
        RecordedCall(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"), signing_name, operation_name, bool(api_params.get("VersionId")))
    )
    return _original_make_api_call(self, operation_name, api_params)


def install() -> None:
    BaseClient._make_api_call = _strict_make_api_call  # type: ignore[method-assign]


def installed() -> bool:
    return BaseClient._make_api_call is _strict_make_api_call  # type: ignore[comparison-overlap]


def calls_by_function() -> Iterator[tuple[str, set[str]]]:
    functions: dict[str, set[str]] = {}
    for call in RECORDED:
        if call.function:
            functions.setdefault(call.function, set()).add(call.iam_action)
    yield from sorted(functions.items())
