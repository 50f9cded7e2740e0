"""The seed's Experiment methods as commands: list datadrop's experiments, show a dataset's run
groups, and delete a dataset's experiment in the order SageMaker requires (runs, then run groups,
then the experiment), as the SDK's `Experiment._delete_all` does.

Works with any SageMaker client: a deployed stack's region, or moto.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from datadrop import names


@dataclass(frozen=True)
class RunGroup:
    name: str
    display_name: str
    created: datetime | None
    runs: int


def _pages(call: Any, key: str, **request: Any) -> Iterator[dict[str, Any]]:
    while True:
        response = call(**request)
        yield from response.get(key, [])
        token = response.get("NextToken")
        if not token:
            return
        request["NextToken"] = token


def list_experiments(sagemaker: Any, prefix: str) -> list[dict[str, Any]]:
    """datadrop's experiments of this stack (its names start with `<prefix>--`), by name."""
    owned = names.owned_prefix(prefix)
    found = [
        summary
        for summary in _pages(sagemaker.list_experiments, "ExperimentSummaries")
        if summary["ExperimentName"].startswith(owned)
    ]
    return sorted(found, key=lambda summary: summary["ExperimentName"])


def run_groups(
    sagemaker: Any,
    experiment: str,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    sort_by: Literal["Name", "CreationTime"] = "CreationTime",
    sort_order: Literal["Ascending", "Descending"] = "Descending",
) -> list[RunGroup]:
    """The experiment's run groups (trials), as the SDK's `Experiment.list_trials` filters and sorts them."""
    request: dict[str, Any] = {"ExperimentName": experiment, "SortBy": sort_by, "SortOrder": sort_order}
    if created_after:
        request["CreatedAfter"] = created_after
    if created_before:
        request["CreatedBefore"] = created_before
    groups = []
    for trial in _pages(sagemaker.list_trials, "TrialSummaries", **request):
        created = trial.get("CreationTime")
        # Filtered here as well: not every implementation of the API honours the time filters (moto does not).
        if (created_after and created and created < created_after) or (created_before and created and created > created_before):
            continue
        components = _pages(sagemaker.list_trial_components, "TrialComponentSummaries", TrialName=trial["TrialName"])
        runs = sum(
            1
            for component in components
            if not names.is_preparation_component(trial["TrialName"], component["TrialComponentName"])
        )
        groups.append(RunGroup(trial["TrialName"], trial.get("DisplayName") or trial["TrialName"], created, runs))
    key = (lambda group: group.name) if sort_by == "Name" else (lambda group: group.created or datetime.min)
    return sorted(groups, key=key, reverse=sort_order == "Descending")


@dataclass
class Deleted:
    runs: int = 0
    run_groups: int = 0
    experiment: bool = False


def delete_experiment(sagemaker: Any, experiment: str) -> Deleted:
    """Every run (trial component), then every run group (trial), then the experiment: SageMaker
    refuses to delete a trial that still has components, or an experiment that still has trials."""
    deleted = Deleted()
    for trial in list(_pages(sagemaker.list_trials, "TrialSummaries", ExperimentName=experiment)):
        for component in list(_pages(sagemaker.list_trial_components, "TrialComponentSummaries", TrialName=trial["TrialName"])):
            name = component["TrialComponentName"]
            sagemaker.disassociate_trial_component(TrialComponentName=name, TrialName=trial["TrialName"])
            sagemaker.delete_trial_component(TrialComponentName=name)
            deleted.runs += not names.is_preparation_component(trial["TrialName"], name)
        sagemaker.delete_trial(TrialName=trial["TrialName"])
        deleted.run_groups += 1
    sagemaker.delete_experiment(ExperimentName=experiment)
    deleted.experiment = True
    return deleted
