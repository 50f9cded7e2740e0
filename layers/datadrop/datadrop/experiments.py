"""SageMaker Experiments, written with boto3 the way the SageMaker Python SDK's `Run` writes them.

experiment `<prefix>-<dataset>` → run group (trial) `<prefix>-<dataset>-<version>` → one run
(trial component `<experiment>-<run name>`, tagged `sagemaker:trial-component-source=run`) per
training job, so `Experiment.load`, `list_trials()` and `load_run(run_name, experiment_name)` from
the SDK, and Studio's Experiments view, show datadrop's runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from datadrop import names
from datadrop.compute import raise_capacity_or
from datadrop.config import ExperimentSettings

RUN_TAG = {"Key": "sagemaker:trial-component-source", "Value": "run"}
PREPARATION_TAG = {"Key": "datadrop:step", "Value": "prepare"}
METRICS_PER_REQUEST = 10  # BatchPutMetrics' MetricData holds at most 10
logger = Logger(child=True)


@dataclass(frozen=True)
class PreparationRecord:
    """What the prepare step did to a dataset version, as the run group shows it: the data-quality
    report in short (parameters) and where the upload and the prepared data are (artifacts)."""

    component_name: str
    display_name: str
    parameters: dict[str, str]
    inputs: dict[str, str]
    outputs: dict[str, str]


@dataclass(frozen=True)
class RunHandle:
    experiment_name: str
    run_group: str
    trial_component_name: str
    run_name: str

    def experiment_config(self) -> dict[str, str]:
        """The ExperimentConfig a training job carries, as the SDK's Run.experiment_config builds it."""
        return {
            "ExperimentName": self.experiment_name,
            "TrialName": self.run_group,
            "RunName": self.trial_component_name,
        }


def parameter_value(value: str) -> dict[str, str | float]:
    """As the SDK's Run.log_parameter writes it: numbers as NumberValue (so Studio can sort and
    plot them), anything else as StringValue."""
    try:
        number = float(value)
    except ValueError:
        return {"StringValue": value}
    return {"NumberValue": number} if math.isfinite(number) else {"StringValue": value}


def _ignore_exists(call: Any, **kwargs: Any) -> None:
    try:
        call(**kwargs)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        message = error.response["Error"].get("Message", "")
        if code in ("ResourceInUse", "ResourceInUseException") or "already exist" in message:
            return
        raise_capacity_or(error)  # the run waits for the sweeper instead of failing


def _tags(dataset: str, version: str, settings: ExperimentSettings | None) -> list[dict[str, str]]:
    """datadrop's own tags, then the dataset config's `experiment.tags`."""
    user_tags = (settings or ExperimentSettings()).tags
    return [
        {"Key": "datadrop:dataset", "Value": dataset},
        {"Key": "datadrop:version", "Value": version},
        *({"Key": key, "Value": value} for key, value in sorted(user_tags.items())),
    ]


@dataclass
class ExperimentTracker:
    client: Any  # boto3 SageMaker client
    metrics_client: Any  # boto3 sagemaker-metrics client
    prefix: str

    def handle(self, dataset: str, version: str, run_index: int, attempt: int = 1) -> RunHandle:
        run_name = names.RunNames(self.prefix, dataset, version, run_index, attempt).run_name
        return RunHandle(
            experiment_name=names.experiment_name(self.prefix, dataset),
            run_group=names.run_group_name(self.prefix, dataset, version),
            trial_component_name=names.trial_component_name(self.prefix, dataset, run_name),
            run_name=run_name,
        )

    def start_run(
        self,
        handle: RunHandle,
        dataset: str,
        version: str,
        parameters: dict[str, str],
        inputs: dict[str, str],
        settings: ExperimentSettings | None = None,
        group_exists: bool = False,
        preparation: PreparationRecord | None = None,
    ) -> None:
        """Create experiment, run group and run (each only if absent) and record what goes in.
        Display name, description and tags come from the dataset config's `experiment`.
        `group_exists`: the caller knows the experiment and run group were made (a tuning job's
        runs: train made them before the tuning job), so only the run is created."""
        if group_exists:
            tags = _tags(dataset, version, settings)
        else:
            tags = self.ensure_run_group(handle, dataset, version, settings, preparation)
        _ignore_exists(
            self.client.create_trial_component,
            TrialComponentName=handle.trial_component_name,
            DisplayName=handle.run_name,
            Status={"PrimaryStatus": "InProgress"},
            StartTime=datetime.now(UTC),
            Parameters={key: parameter_value(value) for key, value in parameters.items()},
            InputArtifacts={name: {"Value": uri} for name, uri in inputs.items()},
            Tags=[*tags, RUN_TAG],
        )
        _ignore_exists(
            self.client.associate_trial_component,
            TrialComponentName=handle.trial_component_name,
            TrialName=handle.run_group,
        )

    def ensure_run_group(
        self,
        handle: RunHandle,
        dataset: str,
        version: str,
        settings: ExperimentSettings | None = None,
        preparation: PreparationRecord | None = None,
    ) -> list[dict[str, str]]:
        """The dataset's experiment and the version's run group, each created only if absent, and
        in the group the record of the data preparation when given. Returns the tags they carry
        (their runs carry them too)."""
        settings = settings or ExperimentSettings()
        tags = _tags(dataset, version, settings)
        _ignore_exists(
            self.client.create_experiment,
            ExperimentName=handle.experiment_name,
            DisplayName=settings.display_name or handle.experiment_name,
            Description=settings.description or f"datadrop runs for dataset {dataset}",
            Tags=tags,
        )
        _ignore_exists(
            self.client.create_trial,
            TrialName=handle.run_group,
            ExperimentName=handle.experiment_name,
            # SageMaker checks DisplayName against [a-zA-Z0-9](-*[a-zA-Z0-9]){0,119}: no spaces.
            DisplayName=f"{dataset}-{version}",
            Tags=tags,
        )
        if preparation is not None:
            self._record_preparation(handle, preparation, tags)
        return tags

    def _record_preparation(self, handle: RunHandle, preparation: PreparationRecord, tags: list[dict[str, str]]) -> None:
        """A Completed trial component in the run group, beside the runs but not tagged as one (so
        the SDK's run listings and `datadrop runs` leave it out), as SageMaker Pipelines records a
        processing step: Studio shows the data-quality summary next to the runs it fed."""
        _ignore_exists(
            self.client.create_trial_component,
            TrialComponentName=preparation.component_name,
            DisplayName=preparation.display_name,
            Status={"PrimaryStatus": "Completed"},
            Parameters={key: parameter_value(value) for key, value in preparation.parameters.items()},
            InputArtifacts={name: {"Value": uri} for name, uri in preparation.inputs.items()},
            OutputArtifacts={name: {"Value": uri} for name, uri in preparation.outputs.items()},
            Tags=[*tags, PREPARATION_TAG],
        )
        _ignore_exists(
            self.client.associate_trial_component,
            TrialComponentName=preparation.component_name,
            TrialName=handle.run_group,
        )

    def log_metrics(self, handle: RunHandle, metrics: dict[str, float]) -> list[str]:
        """Metrics go through sagemaker-metrics, like Run.log_metric (at most 10 per request).
        BatchPutMetrics answers 200 even when it drops some: its Errors are read, each dropped
        metric is logged with SageMaker's reason, and the names are returned."""
        now = datetime.now(UTC)
        data = [{"MetricName": name, "Timestamp": now, "Step": 0, "Value": float(value)} for name, value in metrics.items()]
        dropped: list[str] = []
        for start in range(0, len(data), METRICS_PER_REQUEST):
            batch = data[start : start + METRICS_PER_REQUEST]
            response = self.metrics_client.batch_put_metrics(TrialComponentName=handle.trial_component_name, MetricData=batch)
            for error in response.get("Errors") or []:
                name = str(batch[int(error.get("MetricIndex", 0))]["MetricName"])
                logger.error(
                    "SageMaker dropped a metric", run=handle.trial_component_name, metric=name,
                    code=error.get("Code"), reason=error.get("Message"),
                )  # fmt: skip
                dropped.append(name)
        return dropped

    def finish_run(self, handle: RunHandle, succeeded: bool, outputs: dict[str, str], message: str | None = None) -> None:
        status: dict[str, str] = {"PrimaryStatus": "Completed" if succeeded else "Failed"}
        if message:
            status["Message"] = message[:1024]
        self.client.update_trial_component(
            TrialComponentName=handle.trial_component_name,
            Status=status,
            EndTime=datetime.now(UTC),
            OutputArtifacts={name: {"Value": uri} for name, uri in outputs.items()},
        )
