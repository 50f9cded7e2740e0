"""Every algorithm, locally, on each problem type it supports: one run group per problem type
trains them all on the same splits, scores them on the same test rows, deploys the best; and each
run's own model, served as its cloud model is (script mode for XGBoost, an inference pipeline for
the others), answers raw rows in datadrop's response shape. (The README's table of held-out
metrics per algorithm comes from bench/algorithms.py, which runs the same run groups.)
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datadrop import algorithms, cli, leaderboard
from datadrop.local.endpoint import LocalEndpoint
from datadrop.local.runtime import LocalStack
from moto import mock_aws

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "penguins"

pytestmark = pytest.mark.e2e

TARGETS = {"binary": "sex", "multiclass": "species", "regression": "body_mass_g"}
# Floors far below what each algorithm reaches on penguins (README's table), far above chance: a
# twin that learns nothing, or a pipeline stage that scrambles features, fails them.
FLOORS = {"binary": ("accuracy", 0.6), "multiclass": ("accuracy", 0.6), "regression": ("r2", 0.3)}
RAW_ROWS = (
    "species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year\n"
    "Adelie,Torgersen,39.1,18.7,181,3750,male,2007\n"
    "Gentoo,Biscoe,46.1,13.2,211,4500,female,2007\n"
)


def supporting(problem_type: str) -> list[str]:
    return [name for name in algorithms.names() if problem_type in algorithms.get(name).problem_types]


def config(problem_type: str) -> str:
    lines = [f"target: {TARGETS[problem_type]}", f"problem_type: {problem_type}", "drop_columns: [year]", "threshold: 0.1"]
    if problem_type == "regression":
        lines.append("metric: r2")
    lines.append(f"algorithms: [{', '.join(supporting(problem_type))}]")
    return "\n".join(lines) + "\n"


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with mock_aws(), LocalStack(template_path=REPO / "template.yaml") as local:
        yield local


def _post(url: str, accept: str) -> tuple[str, Any]:
    request = urllib.request.Request(url, data=RAW_ROWS.encode(), headers={"Content-Type": "text/csv", "Accept": accept})
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read().decode()
        return response.headers.get("Content-Type", ""), body


@pytest.mark.parametrize("problem_type", ["binary", "multiclass", "regression"])
def test_every_algorithm_trains_is_scored_on_the_same_rows_and_serves_raw_rows(
    stack: LocalStack, problem_type: str, tmp_path: Path
) -> None:
    dataset = f"algorithms-{problem_type}"
    names = supporting(problem_type)
    stack.put_config(dataset, config(problem_type))
    stack.upload(EXAMPLE / "penguins.csv", dataset)
    stack.drain()
    assert stack.dead_letters == []

    (version,) = stack.services.state.list_versions(dataset)
    runs = stack.services.state.list_runs(dataset, version.version)
    assert sorted(run.algorithm for run in runs) == sorted(names)
    failures = {run.algorithm: run.failure_reason for run in runs if run.status.value != "EVALUATED"}
    assert failures == {}

    metric, floor = FLOORS[problem_type]
    reports = {run.algorithm: json.loads(stack.services.objects.read_uri(run.report or "")) for run in runs}
    for name, run in ((run.algorithm, run) for run in runs):
        assert run.metrics[metric] >= floor, (name, run.metrics)
    # One test split for all: every report scored the same rows, all of them.
    (prepared,) = stack.events_of("DatasetPrepared")
    scored = {(report["dataset"]["item_count"], report["datadrop"]["test"]) for report in reports.values()}
    assert scored == {(prepared["rows"]["test"], prepared["artifacts"]["test"])}, scored

    # The best run is deployed, and the summary names each run's algorithm.
    (decision,) = stack.events_of("ModelApproved")
    best = max(runs, key=lambda run: run.metrics[metric])
    assert decision["best_run"]["algorithm"] == best.algorithm
    assert stack.events_of("ModelDeployed")

    # Each run's model answers raw rows as its cloud model would: through the pipeline.
    for run in runs:
        files = stack.compute._materialise_model(
            run_model(stack, dataset, version.version, run.run_index), tmp_path / run.algorithm
        )
        with LocalEndpoint(files) as endpoint:
            content_type, body = _post(endpoint.invocations_url, "application/json")
            assert content_type.startswith("application/json"), (run.algorithm, content_type)
            answers = json.loads(body)["predictions"]
            assert len(answers) == 2, (run.algorithm, body)
            for answer in answers:
                if problem_type == "regression":
                    assert set(answer) == {"value"} and 2000 < answer["value"] < 7000, (run.algorithm, answer)
                    continue
                assert answer["label"] in prepared["classes"], (run.algorithm, answer)
                if run.algorithm == "knn":  # k-NN answers labels only
                    assert set(answer) == {"label"}, answer
                else:
                    assert set(answer) == {"label", "probabilities"}, (run.algorithm, answer)
                    assert sorted(answer["probabilities"]) == sorted(prepared["classes"])
                    assert abs(sum(answer["probabilities"].values()) - 1.0) < 1e-6, (run.algorithm, answer)
                    assert max(answer["probabilities"], key=answer["probabilities"].get) == answer["label"]
            _, csv_body = _post(endpoint.invocations_url, "text/csv")
            assert len(csv_body.strip().splitlines()) == 2, (run.algorithm, csv_body)


def run_model(stack: LocalStack, dataset: str, version: str, run_index: int) -> str:
    """The SageMaker model the run's evaluation created (the one its batch transform scored)."""
    (model,) = [
        name
        for name, request in stack.compute._models.items()
        if {"Key": "datadrop:version", "Value": version} in request["Tags"] and name.endswith(f"-r{run_index:02d}")
    ]
    return model


def test_the_four_algorithm_example_compares_them_on_one_split_and_runs_names_each_algorithm(stack: LocalStack) -> None:
    """examples/penguins/four-algorithms.yaml: xgboost, a two-run LightGBM grid, linear-learner and
    knn in one run group; `datadrop runs` (leaderboard.as_table) has an algorithm column."""
    stack.put_config("penguins-four", (EXAMPLE / "four-algorithms.yaml").read_text())
    stack.upload(EXAMPLE / "penguins.csv", "penguins-four")
    stack.drain()
    (started,) = stack.events_of("TrainingStarted")
    assert [run["algorithm"] for run in started["runs"]] == ["xgboost", "lightgbm", "lightgbm", "linear-learner", "knn"]
    assert {run["hyperparameters"].get("num_leaves") for run in started["runs"] if run["algorithm"] == "lightgbm"} == {"15", "31"}
    evaluated = stack.events_of("RunEvaluated")
    assert len(evaluated) == 5
    (prepared,) = stack.events_of("DatasetPrepared")
    (version,) = stack.services.state.list_versions("penguins-four")
    reports = [
        json.loads(stack.services.objects.read_uri(run.report or ""))
        for run in stack.services.state.list_runs("penguins-four", version.version)
    ]
    assert {(report["dataset"]["item_count"], report["datadrop"]["test"]) for report in reports} == {
        (prepared["rows"]["test"], prepared["artifacts"]["test"])
    }
    (decision,) = stack.events_of("ModelApproved")
    best = max(evaluated, key=lambda event: (event["run"]["metrics"]["accuracy"], -event["run"]["run_index"]))
    assert decision["best_run"]["run_index"] == best["run"]["run_index"]
    assert decision["best_run"]["algorithm"] == best["run"]["algorithm"]
    (deployed,) = stack.events_of("ModelDeployed")
    assert deployed["version"] == decision["version"]

    table = leaderboard.as_table(leaderboard.load(stack.services.state, "penguins-four"))
    header, *rows = table.splitlines()[1:]
    assert header.split()[:3] == ["run", "algorithm", "status"]
    assert sorted(row.split()[1] for row in rows) == ["knn", "lightgbm", "lightgbm", "linear-learner", "xgboost"]
    assert "num_leaves" in header  # varied within LightGBM's runs


def test_run_json_keeps_stdout_to_one_object_while_the_twins_log(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """LightGBM and CatBoost print every boosting round, some of it from C++: in a container that is
    CloudWatch's; locally it goes to stderr, and `datadrop run --json` still prints one JSON object."""
    config = tmp_path / "boosters.yaml"
    config.write_text("target: species\ndrop_columns: [year]\nalgorithms: [lightgbm, catboost]\n")
    arguments = ["run", str(EXAMPLE / "penguins.csv"), "--dataset", "boosters", "--config", str(config), "--isolated", "--json"]
    assert cli.main(arguments) == 0
    out, err = capfd.readouterr()
    summary = json.loads(out)
    assert [run["algorithm"] for run in summary["runs"]] == ["lightgbm", "catboost"]
    assert "val's multi_logloss" in err and "bestTest" in err  # the containers' log lines, where a log belongs
