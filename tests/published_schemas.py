"""Every event datadrop publishes in the tests is checked against its schema in schemas/ (the
files subscribers get), so a model change that the schemas do not follow fails the tests."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


@cache
def validator(detail_type: str) -> Draft4Validator:
    path = SCHEMAS / f"{detail_type}.json"
    assert path.exists(), f"datadrop published {detail_type!r}, which has no schema in schemas/"
    return Draft4Validator(json.loads(path.read_text()))


def check(event: dict[str, Any]) -> None:
    """Raise when a published datadrop event does not match its schema (other sources pass)."""
    if event.get("source") != "datadrop":
        return
    problems = sorted(validator(event["detail-type"]).iter_errors(event), key=lambda error: list(error.path))
    assert not problems, f"{event['detail-type']} does not match schemas/: " + "; ".join(
        f"{'/'.join(map(str, problem.path))}: {problem.message}" for problem in problems[:5]
    )
