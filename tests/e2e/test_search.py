"""Hyperparameter search in local mode: a 2x3 grid becomes six runs of one run group, and the best
held-out run is the one approved; the decision event stays small and points at the leaderboard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from datadrop.local.runtime import LocalStack
from moto import mock_aws

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "penguins"

pytestmark = pytest.mark.e2e

GRID = """target: sex
threshold: 0.5
hyperparameters:
  num_round: 20
  max_depth: [1, 6]
  eta: [0.05, 0.3, 1.0]
search: {strategy: grid, max_parallel: 2}
"""


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with mock_aws(), LocalStack(template_path=REPO / "template.yaml") as local:
        yield local


def test_a_2x3_grid_trains_six_runs_in_one_run_group_and_approves_the_best(stack: LocalStack) -> None:
    in_progress_at_each_start: list[int] = []
    create = stack.compute.start_training_job

    def watched_create(request: dict) -> bool:
        created = create(request)
        in_progress_at_each_start.append(
            sum(job.status == "InProgress" for (kind, _), job in stack.compute._jobs.items() if kind == "training")
        )
        return created

    stack.compute.start_training_job = watched_create  # type: ignore[method-assign]
    stack.put_config("penguins-sex", GRID)
    stack.upload(EXAMPLE / "penguins.csv", "penguins-sex")
    stack.drain()
    # the job timeline: never more than max_parallel training jobs in progress, and both slots used
    assert len(in_progress_at_each_start) == 6 and max(in_progress_at_each_start) == 2, in_progress_at_each_start
    assert stack.dead_letters == []

    (started,) = stack.events_of("TrainingStarted")
    assert len(started["runs"]) == 6
    assert [run["status"] for run in started["runs"]] == ["TRAINING"] * 2 + ["PENDING"] * 4
    planned = {(run["hyperparameters"]["max_depth"], run["hyperparameters"]["eta"]) for run in started["runs"]}
    assert planned == {(depth, eta) for depth in ("1", "6") for eta in ("0.05", "0.3", "1.0")}
    assert len(stack.events_of("RunEvaluated")) == 6

    # one run group of the dataset's experiment holds the six runs
    trials = stack.sagemaker.list_trials(ExperimentName="datadrop--penguins-sex")["TrialSummaries"]
    assert [trial["TrialName"] for trial in trials] == [started["run_group"]]
    components = stack.sagemaker.list_trial_components(TrialName=started["run_group"])["TrialComponentSummaries"]
    assert len(components) == 6
    component = stack.sagemaker.describe_trial_component(TrialComponentName=components[0]["TrialComponentName"])
    assert isinstance(component["Parameters"]["eta"]["NumberValue"], float)  # numbers as numbers, as the SDK writes them

    (decision,) = stack.events_of("ModelApproved")
    accuracies = {event["run"]["run_index"]: event["run"]["metrics"]["accuracy"] for event in stack.events_of("RunEvaluated")}
    best_index = max(sorted(accuracies), key=lambda index: accuracies[index])
    assert decision["best_run"]["run_index"] == best_index
    assert decision["value"] == max(accuracies.values())
    assert decision["run_count"] == 6 and decision["failed_runs"] == 0 and "runs" not in decision

    leaderboard = json.loads(stack.services.objects.read_uri(decision["leaderboard"]))
    assert len(leaderboard["runs"]) == 6 and leaderboard["best_run"] == best_index
    ranked = [run["metrics"]["accuracy"] for run in leaderboard["runs"]]
    assert ranked == sorted(ranked, reverse=True)
    (deployed,) = stack.events_of("ModelDeployed")
    assert deployed["version"] == decision["version"]
