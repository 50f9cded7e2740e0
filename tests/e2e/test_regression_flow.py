"""Regression in local mode, on the real example data: the penguins' body mass (grams) from upload to
a serving endpoint that answers a number per raw row; and a gate where a lower-is-better metric
(rmse) rejects. Small runs (30 rounds) keep these fast."""

from __future__ import annotations

import csv
import io
import json
import math
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datadrop import cli
from datadrop.local.runtime import LocalStack
from moto import mock_aws

from tests.e2e.test_cli import run_json, service_logs_on_stdout  # noqa: F401 - the fixture, for the CLI test

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "examples" / "penguins" / "penguins.csv"
CONFIG = "target: body_mass_g\nhyperparameters: {num_round: 30, max_depth: 3}\n"

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with mock_aws(), LocalStack(template_path=REPO / "template.yaml") as local:
        yield local


def _run(stack: LocalStack, config: str, dataset: str = "mass") -> None:
    stack.put_config(dataset, config)
    stack.upload(DATA, dataset)
    stack.drain()
    assert stack.dead_letters == [], [d.error for d in stack.dead_letters]


def _post(url: str, body: str, accept: str, content_type: str = "text/csv") -> str:
    request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": content_type, "Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode()


def test_body_mass_goes_from_upload_to_an_endpoint_that_answers_numbers(stack: LocalStack) -> None:
    _run(stack, CONFIG)
    (prepared,) = stack.events_of("DatasetPrepared")
    assert prepared["problem_type"] == "regression" and prepared["classes"] == []
    assert (prepared["metric"], prepared["threshold"]) == ("r2", 0.5)  # the regression defaults
    (evaluated,) = stack.events_of("RunEvaluated")
    scored = evaluated["run"]["metrics"]
    assert set(scored) == {"r2", "rmse", "mae", "mape"}
    assert 0.5 < scored["r2"] <= 1 and 0 < scored["mae"] <= scored["rmse"] < 1000  # grams
    (approved,) = stack.events_of("ModelApproved")
    assert approved["value"] == pytest.approx(scored["r2"])
    assert approved["reason"] == f"held-out r2 {scored['r2']:.4f} >= threshold 0.5000"
    (deployed,) = stack.events_of("ModelDeployed")
    url = deployed["invocation_url"]

    # A raw row of the file, header and all (its target is ignored), comes back as a number.
    rows = list(csv.reader(DATA.open(newline="")))
    body = io.StringIO()
    csv.writer(body, lineterminator="\n").writerows([rows[0], rows[1]])
    answer = _post(url, body.getvalue(), "text/csv").strip()
    grams = float(answer)
    assert 2500 < grams < 6500 and answer == repr(grams)
    assert json.loads(_post(url, body.getvalue(), "application/json")) == {"predictions": [{"value": grams}]}

    # The reported rmse is the endpoint's own on the held-out rows.
    artifacts = prepared["artifacts"]
    test_rows = stack.services.objects.read_uri(artifacts["test"]).decode()
    truths = json.loads(stack.services.objects.read_uri(artifacts["test_labels"]))
    predicted = [float(line) for line in _post(url, test_rows, "text/csv", "application/jsonlines").split("\n")]
    assert len(predicted) == len(truths) == prepared["rows"]["test"]
    rmse = math.sqrt(sum((guess - truth) ** 2 for guess, truth in zip(predicted, truths)) / len(truths))
    assert scored["rmse"] == pytest.approx(rmse, rel=1e-9)


def test_an_rmse_threshold_rejects_and_the_lowest_rmse_is_the_best_run(stack: LocalStack) -> None:
    config = "target: body_mass_g\nmetric: rmse\nthreshold: 100\nhyperparameters: {num_round: 30, max_depth: [1, 3]}\n"
    _run(stack, config)
    evaluated = {event["run"]["run_index"]: event["run"]["metrics"]["rmse"] for event in stack.events_of("RunEvaluated")}
    assert len(evaluated) == 2
    (rejected,) = stack.events_of("ModelRejected")
    best = min(evaluated, key=lambda index: evaluated[index])
    assert rejected["best_run"]["run_index"] == best and rejected["value"] == pytest.approx(evaluated[best])
    assert rejected["reason"] == f"held-out rmse {evaluated[best]:.4f} > threshold 100.0000: not deployed"
    assert stack.events_of("ModelDeployed") == [] and stack.events_of("ModelApproved") == []
    leaderboard = json.loads(stack.services.objects.read_uri(rejected["leaderboard"]))
    assert [run["run_index"] for run in leaderboard["runs"]] == sorted(evaluated, key=lambda index: evaluated[index])
    assert leaderboard["higher_is_better"] is False


@pytest.mark.usefixtures("service_logs_on_stdout")
def test_datadrop_run_shows_r2_rmse_and_mae_and_a_predicted_number(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "mass.yaml"
    config.write_text(CONFIG)
    code, summary, err = run_json(capsys, str(DATA), "--dataset", "mass", "--config", str(config))
    assert code == cli.EXIT_OK and summary["status"] == "deployed", summary.get("reason")
    assert summary["problem_type"] == "regression" and summary["metric"] == "r2"
    metrics: dict[str, Any] = summary["runs"][0]["test_metrics"]
    assert {"r2", "rmse", "mae"} <= set(metrics)
    assert summary["runs"][0]["hyperparameters"]["objective"] == "reg:squarederror"
    assert 2500 < float(summary["example_prediction"]["response"]) < 6500
    assert "regression, judged by r2" in err and "RunEvaluated" in err and "held-out r2 " in err

    shown = io.StringIO()
    cli.print_summary({**summary, "seconds": 1.0}, shown)
    text = shown.getvalue()
    for name in ("r2", "rmse", "mae"):
        assert f"{name} {metrics[name]:.4f}" in text
    assert f"decision: held-out r2 {metrics['r2']:.4f} >= threshold 0.5000" in text
