"""Per-dataset configuration: `config/<dataset>.yaml` (or .json) in the data bucket.

Validated with pydantic; unknown keys are errors so a typo is reported instead of ignored.

Every step imports this module (DatasetPrepared carries the search space and the experiment
settings), but only the prepare step parses config files: PyYAML is imported by `parse_config`, and
the models defer their validators (defer_build), so the other steps pay for neither; a step builds
the ones it reads at import (datadrop.lambda_support.prebuilt). The prepare step, which parses a
config on every upload, loads both at import (`ready_to_parse`, called by datadrop.intake).
"""

# No `from __future__ import annotations` in the modules that define models: see datadrop.events.
import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from datadrop.metrics import MetricError, MetricName, resolve_metric, resolve_threshold

DATASET_NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,28}[a-z0-9])?$")

DEFAULT_MISSING_VALUES: tuple[str, ...] = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "?", "-")

# Not built at import (see the module docstring).
_LAZY_STRICT = ConfigDict(extra="forbid", defer_build=True)


class ConfigError(ValueError):
    """A dataset config that cannot be used; the message says which field and how to fix it."""


class SplitConfig(BaseModel):
    model_config = _LAZY_STRICT

    validation: float = Field(0.15, gt=0, lt=0.5, description="fraction of rows held out for early stopping")
    test: float = Field(0.15, gt=0, lt=0.5, description="fraction of rows held out for the final evaluation")
    seed: int = Field(42, description="seed of the deterministic shuffle")

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> "SplitConfig":
        if self.validation + self.test >= 0.8:
            raise ValueError("validation + test must leave at least 20% of the rows for training")
        return self


Scalar = str | int | float


class Range(BaseModel):
    """A hyperparameter range, sampled by random search and explored by Bayesian search."""

    model_config = _LAZY_STRICT

    min: float
    max: float
    scale: Literal["linear", "log"] = "linear"
    type: Literal["int", "float"] = "float"

    @model_validator(mode="after")
    def _is_a_range(self) -> "Range":
        if self.min >= self.max:
            raise ValueError(f"min {self.min} must be below max {self.max}")
        if self.scale == "log" and self.min <= 0:
            raise ValueError("a log-scale range needs min > 0")
        return self


HyperparameterSpec = Scalar | list[Scalar] | Range
HYPERPARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")


def check_search_space(space: dict[str, HyperparameterSpec]) -> dict[str, HyperparameterSpec]:
    for key, spec in space.items():
        if not HYPERPARAMETER_NAME.fullmatch(key):
            raise ValueError(f"hyperparameter name {key!r} is not a valid name")
        if isinstance(spec, list) and not spec:
            raise ValueError(f"hyperparameter {key!r} is an empty list: give at least one value")
    return space


class AlgorithmChoice(BaseModel):
    """One algorithm of a version's run group, with its own search space."""

    model_config = _LAZY_STRICT

    name: str = Field(
        description="xgboost, linear-learner, knn, factorization-machines, lightgbm, catboost, autogluon, tabtransformer"
    )
    hyperparameters: dict[str, HyperparameterSpec] = Field(
        default_factory=dict, description="its search space: a value is fixed, a list a grid axis, a range sampled"
    )

    @field_validator("name")
    @classmethod
    def _is_known(cls, name: str) -> str:
        from datadrop import algorithms

        algorithms.get(name)  # AlgorithmError (a ValueError) lists the known names
        return name

    @field_validator("hyperparameters")
    @classmethod
    def _named_well(cls, space: dict[str, HyperparameterSpec]) -> dict[str, HyperparameterSpec]:
        return check_search_space(space)


# A ceiling that keeps a version's run records, its TrainingStarted event and its leaderboard small.
MAX_RUNS = 200


class SearchConfig(BaseModel):
    """How the runs of a version are chosen from `hyperparameters`: a plain value is fixed, a list
    is a grid axis, a {min, max, scale, type} mapping is a range."""

    model_config = _LAZY_STRICT

    strategy: Literal["grid", "random", "bayesian"] = "grid"
    max_runs: int | None = Field(
        None, ge=1, le=MAX_RUNS, description="grid: an upper bound; random and bayesian: how many runs (10)"
    )
    seed: int = Field(0, ge=0, description="seed of the random and Bayesian search")
    max_parallel: int = Field(2, ge=1, le=MAX_RUNS, description="training jobs of the version in progress at once")


# SageMaker's own rules for Experiments display names and tags (it checks them; botocore does not).
DISPLAY_NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,119}$"
TAG_PUNCTUATION = set("_.:/=+-@")
MAX_USER_TAGS = 40  # SageMaker allows 50 per resource; datadrop adds its own


def _tag_text_ok(text: str) -> bool:
    """Letters, digits, spaces and _.:/=+-@ (SageMaker's [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)."""
    return all(char.isalnum() or char.isspace() or char in TAG_PUNCTUATION for char in text)


class ExperimentSettings(BaseModel):
    """What `Experiment.create(...)` and `Run(...)` take in the SDK: how the dataset's experiment
    and its runs are named and described in Studio."""

    model_config = _LAZY_STRICT

    display_name: str | None = Field(None, pattern=DISPLAY_NAME_PATTERN, description="the experiment's name in Studio")
    description: str | None = Field(None, max_length=3072)
    tags: dict[str, str] = Field(default_factory=dict, description="added to the experiment, its run groups and runs")

    @field_validator("tags")
    @classmethod
    def _tags_fit_sagemaker(cls, tags: dict[str, str]) -> dict[str, str]:
        if len(tags) > MAX_USER_TAGS:
            raise ValueError(f"at most {MAX_USER_TAGS} tags")
        for key, value in tags.items():
            if not 1 <= len(key) <= 128 or len(value) > 256:
                raise ValueError(f"tag {key!r}: keys are 1-128 characters, values at most 256")
            if key.lower().startswith(("aws:", "datadrop:", "sagemaker:")):
                raise ValueError(f"tag {key!r}: the aws:, sagemaker: and datadrop: prefixes are reserved")
            if not (_tag_text_ok(key) and _tag_text_ok(value)):
                raise ValueError(f"tag {key!r}: use letters, digits, spaces and _ . : / = + - @ only")
        return tags


class GateConfig(BaseModel):
    """What a candidate must do besides passing the threshold: beat the model in production."""

    model_config = _LAZY_STRICT

    min_improvement: float = Field(
        0.0,
        description="how much better than the champion (the model the endpoint serves, re-scored on the new test "
        "split) the best run must be, in the metric's units: higher for accuracy-like metrics, lower for errors "
        "and losses. 0.0: at least as good; negative: tolerate that much worse",
    )


# SageMaker's rule for a CloudWatch alarm name in AutoRollbackConfiguration (AlarmName).
ALARM_NAME_PATTERN = r"^(?!\s*$).{1,255}$"


class DeploymentSettings(BaseModel):
    """How a new version replaces the one an endpoint serves (UpdateEndpoint's DeploymentConfig).

    The first deployment creates the endpoint; every later one is a blue/green update: SageMaker
    starts the new fleet beside the old, shifts traffic to it as `traffic` says and, when
    `rollback_alarms` are given, rolls back if one of them goes off while traffic shifts or during
    `termination_wait_seconds` after it.
    """

    model_config = _LAZY_STRICT

    traffic: Literal["all_at_once", "canary", "linear"] = Field(
        "all_at_once", description="all_at_once: every request to the new fleet at once; canary: a share first; linear: in steps"
    )
    step_percent: int = Field(
        10, ge=1, le=100, description="canary: the share of capacity that takes traffic first; linear: the share moved per step"
    )
    wait_seconds: int = Field(
        300, ge=0, le=3600, description="canary and linear: how long each share bakes before more traffic moves"
    )
    termination_wait_seconds: int = Field(
        0, ge=0, le=3600, description="how long the old fleet is kept after all traffic moved (a rollback can use it)"
    )
    max_execution_seconds: int | None = Field(
        None, ge=600, le=28800, description="SageMaker fails the update when it takes longer (default: its own)"
    )
    rollback_alarms: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="names of CloudWatch alarms (e.g. on the endpoint's 5xx errors or latency) that roll the update back",
    )

    @field_validator("rollback_alarms")
    @classmethod
    def _alarm_names_fit_sagemaker(cls, names: list[str]) -> list[str]:
        for name in names:
            if not re.fullmatch(ALARM_NAME_PATTERN, name):
                raise ValueError(f"alarm name {name!r} must be 1-255 characters and not blank")
        if len(set(names)) != len(names):
            raise ValueError("an alarm is named twice")
        return names


ColumnRoleSetting = Literal["numeric", "categorical", "boolean", "datetime", "text", "id", "drop"]
FEATURE_ROLE_SETTINGS = ("numeric", "categorical", "boolean", "datetime")  # the pinned roles that keep a column


class ColumnSettings(BaseModel):
    """What the config says about one column, instead of what datadrop would infer."""

    model_config = _LAZY_STRICT

    role: ColumnRoleSetting = Field(
        description="numeric or categorical: used as that kind whatever its values look like; boolean or "
        "datetime: used as that kind, and the dataset is rejected when the values are not true/false or dates; "
        "text, id or drop: not used as a feature"
    )


class DatasetConfig(BaseModel):
    """What a user writes in `config/<dataset>.yaml`. Only `target` is required."""

    model_config = _LAZY_STRICT

    target: str = Field(min_length=1, description="the column to predict")
    problem_type: Literal["auto", "binary", "multiclass", "regression"] = Field(
        "auto",
        description="auto: regression when the target is numbers with more distinct values than a classifier takes, "
        "else binary (2 classes) or multiclass",
    )
    drop_columns: list[str] = Field(default_factory=list, description="columns never used as features")
    columns: dict[str, ColumnSettings] = Field(
        default_factory=dict,
        description="per column name, a pinned role: {role: numeric|categorical|boolean|datetime|text|id|drop}",
    )
    datetime: Literal["expand", "drop"] = Field(
        "expand",
        description="columns of dates: expand into numeric parts (year, month, day, day_of_week, hour, epoch_days) or "
        "drop them; a column pinned as datetime is always expanded",
    )
    missing_values: list[str] = Field(default_factory=lambda: list(DEFAULT_MISSING_VALUES))
    normalise_categories: bool = Field(
        True, description="categorical feature values are case-folded, so 'Dream' and 'dream' are one level"
    )
    max_malformed_share: float = Field(
        0.01, ge=0, lt=0.5, description="share of rows with the wrong number of fields dropped; more rejects the file"
    )
    merge_labels: bool = Field(
        True, description="target labels equal but for case, spacing or number format ('1', '1.0') become one class"
    )
    split: SplitConfig = Field(default_factory=SplitConfig)
    metric: MetricName | None = Field(
        None,
        description="held-out metric the best run is chosen and judged by; None: accuracy for classification, r2 for "
        "regression. accuracy, macro_f1, log_loss (classification); r2, rmse, mae, mape (regression)",
    )
    threshold: float | None = Field(
        None,
        description="deploy when the held-out metric is at least this (accuracy, macro_f1, r2) or at most this "
        "(log_loss, rmse, mae, mape); None: the metric's default (required for the lower-is-better metrics)",
    )
    gate: GateConfig = Field(default_factory=GateConfig)
    approval: Literal["auto", "manual"] = Field(
        "auto",
        description="auto: a best run that passes the gate is approved and deployed; manual: it is registered "
        "PendingManualApproval and deploys when a person approves it (Studio, or `datadrop approve`)",
    )
    algorithms: list[str | AlgorithmChoice] | None = Field(
        None,
        description="the algorithms the version's runs train, compared on the same test rows: names, or "
        "{name, hyperparameters} each with its own search space; None: xgboost",
    )
    hyperparameters: dict[str, HyperparameterSpec] = Field(
        default_factory=dict, description="the search space of the one algorithm (with several, each has its own)"
    )
    search: SearchConfig = Field(default_factory=SearchConfig)
    experiment: ExperimentSettings = Field(default_factory=ExperimentSettings)
    deployment: DeploymentSettings = Field(default_factory=DeploymentSettings)

    @field_validator("hyperparameters")
    @classmethod
    def _hyperparameters_are_named_well(cls, value: dict[str, HyperparameterSpec]) -> dict[str, HyperparameterSpec]:
        return check_search_space(value)

    def algorithm_choices(self) -> list[AlgorithmChoice]:
        """Each algorithm with its search space: `algorithms` as written, the top-level
        `hyperparameters` going to the one algorithm that has none of its own."""
        from datadrop.algorithms import DEFAULT_ALGORITHM

        written = self.algorithms or [DEFAULT_ALGORITHM]
        choices = [AlgorithmChoice(name=entry) if isinstance(entry, str) else entry for entry in written]
        if self.hyperparameters and len(choices) == 1 and not choices[0].hyperparameters:
            choices = [choices[0].model_copy(update={"hyperparameters": self.hyperparameters})]
        return choices

    @model_validator(mode="after")
    def _algorithms_fit(self) -> "DatasetConfig":
        from datadrop import algorithms

        choices = [entry if isinstance(entry, str) else entry.name for entry in self.algorithms or []]
        if self.algorithms is not None and not choices:
            raise ValueError("algorithms is empty: name at least one, or leave it out for xgboost")
        repeated = sorted({name for name in choices if choices.count(name) > 1})
        if repeated:
            raise ValueError(f"algorithms lists {', '.join(repeated)} more than once: give each one entry")
        for name in choices:
            algorithms.get(name)  # an unknown name is reported with the known ones
        if self.hyperparameters and len(choices) > 1:
            raise ValueError(
                "hyperparameters applies to one algorithm, but algorithms lists several: move the values into each "
                "algorithm's own entry, e.g. algorithms: [{name: xgboost, hyperparameters: {max_depth: [3, 6]}}, knn]"
            )
        if self.search.strategy == "bayesian" and len(choices) > 1:
            raise ValueError(
                "a bayesian search tunes one algorithm: list one in algorithms, or use search.strategy grid or random"
            )
        if self.problem_type != "auto":
            for name in choices:
                algorithms.get(name).check_problem_type(self.problem_type)
        return self

    def check_algorithms_fit(self, problem_type: str) -> None:
        """With problem_type auto, known only once the data is read: every algorithm must support it."""
        from datadrop import algorithms

        for choice in self.algorithm_choices():
            try:
                algorithms.get(choice.name).check_problem_type(problem_type)
            except algorithms.AlgorithmError as error:
                raise MetricError(f"{error} (the target {self.target!r} is a {problem_type} target)") from error

    @model_validator(mode="after")
    def _roles_agree_with_drop_columns(self) -> "DatasetConfig":
        for name in self.drop_columns:
            pinned = self.columns.get(name)
            if pinned is not None and pinned.role in FEATURE_ROLE_SETTINGS:
                raise ValueError(
                    f"column {name!r} is in drop_columns but columns.{name}.role is {pinned.role}: keep one of the two"
                )
        return self

    @model_validator(mode="after")
    def _search_fits_the_space(self) -> "DatasetConfig":
        from datadrop.search import SearchSpaceError, plan_size

        for choice in self.algorithm_choices():
            try:
                plan_size(choice.hyperparameters, self.search)
            except SearchSpaceError as error:
                where = f"{choice.name}: " if self.algorithms else ""
                raise ValueError(f"{where}{error}") from error
        return self

    @model_validator(mode="after")
    def _metric_fits(self) -> "DatasetConfig":
        """What can be checked before the data is read; with problem_type auto, prepare checks the rest."""
        try:
            if self.problem_type != "auto":
                metric = resolve_metric(self.metric, self.problem_type)
                resolve_threshold(metric, self.threshold, stack_default=0.0)
            elif self.metric is not None:
                resolve_threshold(self.metric, self.threshold, stack_default=0.0)
            elif self.threshold is not None and self.threshold > 1:
                raise MetricError(
                    f"threshold {self.threshold} is above 1, but without a metric the held-out accuracy "
                    "(classification) or r2 (regression) is judged, and neither exceeds 1: set the threshold, "
                    "or set metric to rmse, mae or mape for a threshold in the target's units"
                )
        except MetricError as error:
            raise ValueError(str(error)) from error
        return self

    def judged_by(self, problem_type: str, stack_default: float) -> tuple[str, float]:
        """The metric and threshold of a dataset of this problem type (`stack_default`: the stack's
        accuracy threshold). Raises MetricError when they do not fit the problem type."""
        try:
            metric = resolve_metric(self.metric, problem_type)
            return metric, resolve_threshold(metric, self.threshold, stack_default)
        except MetricError as error:
            found = f"the target {self.target!r} is a {problem_type} target"
            raise MetricError(f"{error} (problem_type {self.problem_type}: {found})") from error

    def fingerprint(self) -> str:
        """Canonical JSON of the config: part of the dataset version, so a new config retrains. The
        deployment section is left out (how a model is rolled out does not change the model), and so are
        `datetime`, the gate and the approval at their defaults, so configs written before them keep
        their versions."""
        excluded = {"deployment"} | ({"datetime"} if self.datetime == "expand" else set())
        if self.algorithms is None:
            excluded.add("algorithms")
        if self.gate == GateConfig():
            excluded.add("gate")
        if self.approval == "auto":
            excluded.add("approval")
        return json.dumps(self.model_dump(mode="json", exclude=excluded), sort_keys=True, separators=(",", ":"))


def ready_to_parse() -> None:
    """Import PyYAML and build DatasetConfig's validator now, not in the first `parse_config`: for a
    step that parses a config on every invocation (prepare), at import, where its cold start pays."""
    import yaml  # noqa: F401

    DatasetConfig.model_rebuild()


def parse_config(raw: bytes | str, source: str) -> DatasetConfig:
    """Parse YAML or JSON config text; raise ConfigError naming the field and the fix."""
    import yaml  # only the prepare step and the CLI parse config files (see the module docstring)

    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source} is not valid YAML/JSON: {error}".replace("\n", " ")) from error
    if not isinstance(document, dict):
        raise ConfigError(f"{source} must be a mapping with at least `target: <column>`")
    try:
        return DatasetConfig.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or '(top level)'}: {issue['msg']}" for issue in error.errors()
        )
        raise ConfigError(f"{source} is invalid: {problems}") from error


def validate_dataset_name(name: str) -> str:
    if not DATASET_NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"dataset name {name!r} must be 1-30 characters of lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (it becomes part of SageMaker resource names)"
        )
    return name
