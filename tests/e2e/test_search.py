"""Hyperparameter search in local mode: a 2x3 grid becomes six runs of one run group, and the best
held-out run is the one approved; the decision event stays small and points at the leaderboard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from datadrop.local import runner
from datadrop.local.runtime import LocalStack
from datadrop.local.twins import xgboost as xgboost_twin
from moto import mock_aws

from tests.e2e.test_fault_injection import ShufflingStack

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


def _watch_training_starts(stack: LocalStack) -> list[int]:
    """The job timeline: at each training job SageMaker accepts (datadrop's own or a tuning job's),
    how many training jobs are in progress; filled in as the stack runs."""
    in_progress_at_each_start: list[int] = []
    submit = stack.compute._submit

    def watched_submit(kind: str, name: str, request: dict, create: object) -> bool:
        created = submit(kind, name, request, create)  # type: ignore[arg-type]
        if kind == "training":
            in_progress_at_each_start.append(
                sum(job.status == "InProgress" for (job_kind, _), job in stack.compute._jobs.items() if job_kind == "training")
            )
        return created

    stack.compute._submit = watched_submit  # type: ignore[method-assign]
    return in_progress_at_each_start


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with mock_aws(), LocalStack(template_path=REPO / "template.yaml") as local:
        yield local


def test_a_2x3_grid_trains_six_runs_in_one_run_group_and_approves_the_best(stack: LocalStack) -> None:
    in_progress_at_each_start = _watch_training_starts(stack)
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
    components = [
        component
        for component in stack.sagemaker.list_trial_components(TrialName=started["run_group"])["TrialComponentSummaries"]
        if not component["TrialComponentName"].endswith("-prepare")  # the data preparation's record, not a run
    ]
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


def _outcomes(stack: LocalStack) -> dict[tuple[str, str], tuple[str, float | None]]:
    """Each run's (max_depth, eta) → its status and held-out accuracy, from the state table."""
    (version,) = stack.services.state.list_versions("penguins-sex")
    return {
        (run.hyperparameters["max_depth"], run.hyperparameters["eta"]): (
            run.status.value,
            run.metrics.get("accuracy"),
        )
        for run in stack.services.state.list_runs("penguins-sex", version.version)
    }


def test_every_event_three_times_in_shuffled_order_gives_the_same_six_runs_and_one_decision() -> None:
    with mock_aws(), LocalStack(template_path=REPO / "template.yaml") as stack:
        stack.put_config("penguins-sex", GRID)
        stack.upload(EXAMPLE / "penguins.csv", "penguins-sex")
        stack.drain()
        expected = _outcomes(stack)
    assert len(expected) == 6

    with mock_aws(), ShufflingStack(template_path=REPO / "template.yaml") as shuffled:
        shuffled.triplicate = True
        shuffled.put_config("penguins-sex", GRID)
        shuffled.upload(EXAMPLE / "penguins.csv", "penguins-sex")
        shuffled.drain()
        assert shuffled.dead_letters == []
        assert _outcomes(shuffled) == expected  # same runs, same metrics
        assert len(shuffled.events_of("TrainingStarted")) == 1
        assert len(shuffled.events_of("RunEvaluated")) == 6
        assert len(shuffled.events_of("ModelApproved")) == 1 and len(shuffled.events_of("ModelDeployed")) == 1
        assert len(shuffled.compute.jobs("training")) == 6


def test_one_failed_training_job_fails_its_run_with_the_reason_and_the_other_five_decide(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = xgboost_twin.train

    def fail_one(channels: dict, hyperparameters: dict[str, str], model_dir: Path) -> list[dict]:
        if (hyperparameters["max_depth"], hyperparameters["eta"]) == ("6", "0.3"):
            raise runner.TrainingFailed("AlgorithmError: out of memory (injected)")
        return train(channels, hyperparameters, model_dir)

    monkeypatch.setattr(xgboost_twin, "train", fail_one)
    stack.put_config("penguins-sex", GRID)
    stack.upload(EXAMPLE / "penguins.csv", "penguins-sex")
    stack.drain()
    outcomes = _outcomes(stack)
    assert outcomes[("6", "0.3")] == ("FAILED", None)
    assert sorted(status for status, _ in outcomes.values()) == ["EVALUATED"] * 5 + ["FAILED"]
    (version,) = stack.services.state.list_versions("penguins-sex")
    (failed_run,) = [run for run in stack.services.state.list_runs("penguins-sex", version.version) if run.status == "FAILED"]
    assert failed_run.failure_reason == "training Failed: AlgorithmError: out of memory (injected)"
    # its Experiments run ended Failed with SageMaker's reason
    component = stack.sagemaker.describe_trial_component(TrialComponentName=f"datadrop--penguins-sex-{failed_run.run_name}")
    assert component["Status"] == {"PrimaryStatus": "Failed", "Message": "AlgorithmError: out of memory (injected)"}
    (decision,) = stack.events_of("ModelApproved")
    assert decision["run_count"] == 6 and decision["failed_runs"] == 1
    best = max(accuracy for status, accuracy in outcomes.values() if accuracy is not None)
    assert decision["value"] == best


BAYESIAN = """target: sex
threshold: 0.5
hyperparameters:
  num_round: 20
  max_depth: {min: 1, max: 8, type: int}
  eta: {min: 0.01, max: 1.0, scale: log}
  subsample: [0.6, 0.9]
search: {strategy: bayesian, max_runs: 8, max_parallel: 2, seed: 7}
"""


def test_a_bayesian_search_is_a_tuning_job_whose_training_jobs_become_runs_chosen_by_tpe(stack: LocalStack) -> None:
    in_progress_at_each_start = _watch_training_starts(stack)
    stack.put_config("penguins-sex", BAYESIAN)
    stack.upload(EXAMPLE / "penguins.csv", "penguins-sex")
    stack.drain()
    assert stack.dead_letters == []
    (tuning_job,) = stack.compute.tuning_jobs()
    (started,) = stack.events_of("TrainingStarted")
    assert started["tuning_job"] == tuning_job and started["max_runs"] == 8
    assert len(in_progress_at_each_start) == 8 and max(in_progress_at_each_start) == 2

    # every training job the tuning job launched is a run of the version's run group
    (version,) = stack.services.state.list_versions("penguins-sex")
    runs = stack.services.state.list_runs("penguins-sex", version.version)
    assert sorted(run.training_job for run in runs) == sorted(stack.compute.jobs("training"))
    assert all(run.training_job.startswith(f"{tuning_job}-") and run.status == "EVALUATED" for run in runs)
    components = [
        component
        for component in stack.sagemaker.list_trial_components(TrialName=started["run_group"])["TrialComponentSummaries"]
        if not component["TrialComponentName"].endswith("-prepare")  # the data preparation's record, not a run
    ]
    assert len(components) == 8
    for run in runs:
        values = run.hyperparameters
        assert (
            1 <= int(values["max_depth"]) <= 8 and 0.01 <= float(values["eta"]) <= 1.0 and values["subsample"] in ("0.6", "0.9")
        )
        assert values["_tuning_objective_metric"] == "validation:logloss" and values["num_round"] == "20"

    # TPE learnt from every finished job: each was told its validation log loss, the objective
    tuner = stack.compute._tunings[tuning_job].tuner
    study = tuner.study
    assert type(study.sampler).__name__ == "TPESampler"
    assert [trial.state.name for trial in study.trials] == ["COMPLETE"] * 8
    training_metrics = {run.training_job: run.training_metrics["validation:logloss"] for run in runs}
    assert sorted(trial.value for trial in study.trials) == sorted(training_metrics.values())
    # the tuning job's end fixed the run count; the decision is on the held-out test split
    assert version.tuning_ended == "Completed" and version.run_count == 8
    (decision,) = stack.events_of("ModelApproved")
    assert decision["run_count"] == 8
    assert decision["value"] == max(run.metrics["accuracy"] for run in runs)
    assert len(stack.events_of("ModelDeployed")) == 1
