"""The evaluation report, the gate and the model registry in local mode, on the real example data.

- The report of a run on the penguins' species (multiclass) and sex (binary) holds every metric of its
  problem type, on the test rows only, each equal to scikit-learn's on the same predictions.
- v1 deploys; a worse v2 passes the threshold but not the champion (v1, re-scored on v2's test split)
  and is rejected; a better v3 deploys as an update. "Worse" and "better" are made deterministic by
  the hyperparameters: one boosting round of depth 1 against many, judged by log loss.
- With `approval: manual` nothing deploys until the package is approved in the registry, and two
  approvals (and SageMaker's repeated events) deploy once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datadrop import names
from datadrop.local.runtime import LocalStack
from moto import mock_aws

from tests.e2e.polling import Poller
from tests.unit.test_scoring import TOLERANCE, ours, sklearn_classification

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "penguins"
DATA = EXAMPLE / "penguins.csv"
# Judged by log loss: lower is better, and one round of depth 1 is far from 50 rounds of depth 3.
GATE = "target: sex\ndrop_columns: [year]\nmetric: log_loss\nthreshold: 0.69\n"
WORSE = GATE + "hyperparameters: {num_round: 1, max_depth: 1}\n"
FAIR = GATE + "hyperparameters: {num_round: 8, max_depth: 2}\n"
BETTER = GATE + "hyperparameters: {num_round: 60, max_depth: 3}\nsplit: {seed: 3}\n"

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with mock_aws(), LocalStack(template_path=REPO / "template.yaml") as local:
        yield local


def _run(stack: LocalStack, dataset: str, config: str) -> None:
    stack.put_config(dataset, config)
    stack.upload(DATA, dataset)
    stack.drain()
    assert stack.dead_letters == [], [delivery.error for delivery in stack.dead_letters]


def _of(stack: LocalStack, detail_type: str, version: str) -> list[dict[str, Any]]:
    return [event for event in stack.events_of(detail_type) if event["version"] == version]


def _packages(stack: LocalStack, dataset: str) -> list[dict[str, Any]]:
    group = names.model_package_group_name(stack.settings.name_prefix, dataset)
    summaries = stack.sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    described = [stack.sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in summaries]
    return sorted(described, key=lambda package: package["ModelPackageVersion"])


@pytest.mark.parametrize(("dataset", "config"), [("species", "species.yaml"), ("sex", "sex.yaml")])
def test_the_report_holds_every_metric_of_its_problem_type_as_scikit_learn_computes_it(
    stack: LocalStack, dataset: str, config: str
) -> None:
    _run(stack, dataset, (EXAMPLE / config).read_text())
    (prepared,) = stack.events_of("DatasetPrepared")
    (evaluated,) = stack.events_of("RunEvaluated")
    report = json.loads(stack.services.objects.read_uri(evaluated["report"]))
    kind = prepared["problem_type"]
    section = report[f"{kind}_classification_metrics"]

    # Test rows only: as many predictions as held-out labels, and that is the test split's size.
    truths = [str(label) for label in json.loads(stack.services.objects.read_uri(prepared["artifacts"]["test_labels"]))]
    version = prepared["version"]
    output = stack.services.settings.locations(dataset, version).evaluation_output_uri("r01") + "test.jsonl.out"
    predictions = [json.loads(line) for line in stack.services.objects.read_uri(output).decode().splitlines() if line]
    assert len(predictions) == len(truths) == prepared["rows"]["test"] == report["dataset"]["item_count"]

    expected = sklearn_classification(truths, predictions, prepared["classes"])
    scored = {name: section[name]["value"] for name in ("accuracy", "balanced_accuracy", "macro_precision",
                                                         "macro_recall", "macro_f1", "roc_auc", "log_loss")}  # fmt: skip
    flat = ours({**scored, "per_class": report["datadrop"]["per_class"]})
    assert flat == pytest.approx(expected, abs=TOLERANCE, rel=TOLERANCE)
    matrix = section["confusion_matrix"]
    assert sum(sum(row.values()) for row in matrix.values()) == len(truths)
    assert set(matrix) == set(prepared["classes"])
    if kind == "binary":
        positive = prepared["classes"][1]
        assert section["auc"]["value"] == section["roc_auc"]["value"]
        assert section["f1"]["value"] == pytest.approx(expected[f"{positive}:f1"], abs=TOLERANCE)
    # The run's headline numbers (the event, the Experiments run) are the report's.
    assert evaluated["run"]["metrics"] == pytest.approx(scored)
    # The package in the registry points at the report as its model quality statistics.
    (package,) = _packages(stack, dataset)
    statistics = package["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics == {"ContentType": "application/json", "S3Uri": evaluated["report"]}


def test_a_worse_version_loses_to_the_champion_and_a_better_one_replaces_it(stack: LocalStack) -> None:
    _run(stack, "gate", FAIR)
    (first,) = stack.events_of("ModelApproved")
    v1 = first["version"]
    assert first["champion"] is None  # the first version: the threshold alone
    assert _of(stack, "ModelDeployed", v1)

    _run(stack, "gate", WORSE)
    (second,) = stack.events_of("ModelRejected")
    v2 = second["version"]
    assert second["value"] < second["threshold"]  # it passes the threshold (log loss: a maximum) ...
    champion = second["champion"]
    assert champion["version"] == v1 and champion["min_improvement"] == 0.0
    assert champion["value"] < second["value"]  # ... but not the champion
    assert "does not beat the champion" in second["reason"] and second["reason"].endswith("not deployed")
    # The champion was scored again, by a batch transform of its model on v2's test split.
    assert champion["report"].endswith(f"/{v2}/evaluation/champion-{v1}/report.json")
    transform = names.champion_transform_job(stack.settings.name_prefix, "gate", v2, v1)
    assert transform in stack.compute.jobs("transform")
    assert stack.compute.describe_transform_job(transform)["ModelName"] == names.RunNames("datadrop", "gate", v1, 1).model
    assert _of(stack, "DeploymentStarted", v2) == [] and _of(stack, "ModelDeployed", v2) == []

    (deployed,) = _of(stack, "ModelDeployed", v1)
    poller = Poller(deployed["invocation_url"])  # a client of the endpoint while v3 replaces v1
    poller.start()
    try:
        _run(stack, "gate", BETTER)
    finally:
        poller.stop()
    failed = [answer for answer in poller.answers if answer[1] != 200]
    assert poller.answers and failed == [], failed[:3]
    assert {answer[2] for answer in poller.answers} <= {"female", "male"}
    (third,) = _of(stack, "ModelApproved", stack.events_of("DatasetPrepared")[-1]["version"])
    v3 = third["version"]
    assert third["champion"]["version"] == v1 and third["value"] <= third["champion"]["value"]
    # Another split seed: other test rows, so the champion's number is a new one, not its old one.
    assert third["champion"]["value"] != pytest.approx(first["value"], abs=1e-12)
    assert "beats the champion" in third["reason"]
    (started,) = _of(stack, "DeploymentStarted", v3)
    assert started["update"] is True
    assert _of(stack, "ModelDeployed", v3)
    approvals = [package["ModelApprovalStatus"] for package in _packages(stack, "gate")]
    assert approvals == ["Approved", "Rejected", "Approved"]  # the rejected one stays registered


def test_manual_approval_deploys_only_when_a_person_approves_and_only_once(stack: LocalStack) -> None:
    _run(stack, "manual", FAIR + "approval: manual\n")
    (pending,) = stack.events_of("ModelPendingApproval")
    assert pending["approval"] == "manual" and "waiting for a person" in pending["reason"]
    assert stack.events_of("ModelApproved") == [] and stack.events_of("DeploymentStarted") == []
    assert stack.compute.endpoint_names() == []
    (package,) = _packages(stack, "manual")
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert stack.services.state.get_version("manual", pending["version"]).status == "PENDING_APPROVAL"  # type: ignore[union-attr]

    # A person approves it (Studio and `datadrop approve` both call UpdateModelPackage), twice.
    arn = package["ModelPackageArn"]
    for _ in range(2):
        stack.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="ok")
        stack.drain()
    # SageMaker may send several events for one change: the same event again changes nothing.
    changes = [d.event for d in stack.deliveries if d.event.get("detail-type") == "SageMaker Model Package State Change"]
    assert len(changes) == 1 and changes[0]["detail"]["ModelApprovalStatus"] == "Approved"
    stack.events_client.put_events(
        Entries=[{"Source": "aws.sagemaker", "DetailType": changes[0]["detail-type"],
                  "Detail": json.dumps(changes[0]["detail"]), "Resources": [arn]}]
    )  # fmt: skip
    stack.drain()
    assert stack.dead_letters == []
    (approved,) = stack.events_of("ModelApproved")
    assert approved["approval"] == "manual" and approved["reason"].startswith("approved in the model registry")
    assert len(stack.events_of("DeploymentStarted")) == 1 and len(stack.events_of("ModelDeployed")) == 1
    (package,) = _packages(stack, "manual")
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["CustomerMetadataProperties"]["version"] == pending["version"]  # kept through the update
