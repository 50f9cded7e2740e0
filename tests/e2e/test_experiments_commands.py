"""`datadrop experiments` list / show / delete against a deployed stack (on moto)."""

from __future__ import annotations

import pytest
from datadrop import cli
from datadrop.experiments import ExperimentTracker

from tests import strict_requests
from tests.e2e.test_cli import STACK, DeployedStack

pytestmark = pytest.mark.e2e
REGION = ["--stack", STACK, "--region", "us-east-1"]


def _two_versions_of_two_runs(stack: DeployedStack) -> ExperimentTracker:
    tracker = stack.services.experiments
    for version in ("0123456789ab", "ba9876543210"):
        for run_index in (1, 2):
            handle = tracker.handle("penguins", version, run_index)
            tracker.start_run(handle, "penguins", version, parameters={"eta": "0.1"}, inputs={"train": "s3://b/train/"})
    handle = tracker.handle("other", "0123456789ab", 1)
    tracker.start_run(handle, "other", "0123456789ab", parameters={}, inputs={})
    return tracker


def test_list_and_show(deployed_stack: DeployedStack, capsys: pytest.CaptureFixture[str]) -> None:
    _two_versions_of_two_runs(deployed_stack)
    deployed_stack.services.sagemaker.create_experiment(ExperimentName="someone-elses")  # not this stack's
    assert cli.main(["experiments", "list", *REGION]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed[:-1]] == ["prod--other", "prod--penguins"]
    assert listed[-1] == f"(2 experiment(s) of stack {STACK})"

    assert cli.main(["experiments", "show", "penguins", *REGION, "--sort-by", "Name", "--sort-order", "Ascending"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == "prod--penguins: 2 run group(s)"
    assert [line.split()[0] for line in shown[1:]] == ["prod--penguins-0123456789ab", "prod--penguins-ba9876543210"]
    assert all(line.endswith("2 run(s)") for line in shown[1:])
    assert cli.main(["experiments", "show", "penguins", *REGION, "--created-after", "2999-01-01T00:00Z"]) == 0
    assert capsys.readouterr().out.splitlines() == ["prod--penguins: 0 run group(s)"]


def test_delete_removes_runs_then_run_groups_then_the_experiment_and_says_what_it_left(
    deployed_stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    _two_versions_of_two_runs(deployed_stack)
    sagemaker = deployed_stack.services.sagemaker
    assert cli.main(["experiments", "delete", "penguins", *REGION]) == 64  # no terminal to ask, and no --yes
    assert "add --yes" in capsys.readouterr().err
    start = len(strict_requests.RECORDED)
    assert cli.main(["experiments", "delete", "penguins", *REGION, "--yes"]) == 0
    deletes = [
        call.operation for call in strict_requests.RECORDED[start:] if call.operation.startswith(("Delete", "Disassociate"))
    ]
    # SageMaker's order: each run leaves its group and goes, then the group, and the experiment last.
    assert deletes == ["DisassociateTrialComponent", "DeleteTrialComponent"] * 2 + ["DeleteTrial"] + [
        "DisassociateTrialComponent",
        "DeleteTrialComponent",
    ] * 2 + ["DeleteTrial", "DeleteExperiment"]
    said = capsys.readouterr().out
    assert "deleted 4 run(s), 2 run group(s) and experiment prod--penguins" in said
    assert "model registry, the endpoint and the data are left alone" in said
    remaining = {summary["ExperimentName"] for summary in sagemaker.list_experiments()["ExperimentSummaries"]}
    assert remaining == {"prod--other"}
    assert sagemaker.list_trials(ExperimentName="prod--other")["TrialSummaries"]
    components = {summary["TrialComponentName"] for summary in sagemaker.list_trial_components()["TrialComponentSummaries"]}
    assert not any(name.startswith("prod--penguins") for name in components)
