"""The published events' JSON Schemas (schemas/ and template.yaml's registry) are generated from the
event models, stay fresh, are valid draft 4, and accept and refuse what they should."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datadrop import schemas
from datadrop.events import ModelApproved, RunSummary
from jsonschema import Draft4Validator

from tests import published_schemas

REPO = Path(__file__).resolve().parents[2]


def test_schemas_and_the_template_registry_are_fresh() -> None:
    assert schemas.main(["--check", "--root", str(REPO)]) == 0, "run: .venv/bin/python -m datadrop.schemas"


@pytest.mark.parametrize("model", schemas.PUBLISHED, ids=[model.DETAIL_TYPE for model in schemas.PUBLISHED])
def test_each_schema_is_valid_draft_4(model: type) -> None:
    document = json.loads((REPO / "schemas" / f"{model.DETAIL_TYPE}.json").read_text())
    Draft4Validator.check_schema(document)
    assert document["properties"]["detail-type"]["enum"] == [model.DETAIL_TYPE]


def _approved() -> dict:
    best = RunSummary(run_index=1, run_name="v-r01", training_job="j", status="EVALUATED", hyperparameters={"eta": "0.1"})
    detail = ModelApproved(
        dataset="d", version="v", metric="accuracy", value=0.9, threshold=0.8, reason="r", best_run=best,
        run_count=1, failed_runs=0, leaderboard="s3://b/k", model_package_arn=None,
    )  # fmt: skip
    return {"source": "datadrop", "detail-type": "ModelApproved", "detail": json.loads(detail.model_dump_json())}


def test_a_published_event_matches_and_a_broken_one_does_not() -> None:
    published_schemas.check(_approved())
    broken = _approved()
    del broken["detail"]["value"]
    broken["detail"]["run_count"] = "one"
    with pytest.raises(AssertionError, match="value|run_count"):
        published_schemas.check(broken)


def test_the_template_registry_holds_one_schema_per_published_event() -> None:
    block = schemas.template_block()
    assert block.count("Type: AWS::EventSchemas::Schema") == len(schemas.PUBLISHED)
    assert "Type: JSONSchemaDraft4" in block and "${NamePrefix}--events" in block
