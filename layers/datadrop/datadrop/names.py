"""Deterministic resource names and S3 locations.

Every SageMaker name derives from (prefix, dataset, version, run index, attempt), so a
re-delivered event asks for the same name again and SageMaker's ResourceInUse tells us the work is
already done. Names are never parsed back: the state table maps each name to its run.

Every name starts with `<prefix>--`: a prefix never contains "--" and never ends with "-", so the
rule filters and IAM resource patterns `<prefix>--*` of one stack never match another stack's
names (stack "datadrop" vs stack "datadrop-x").
SageMaker names must match ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
SAGEMAKER_NAME_MAX = 63
PREFIX_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
DELIMITER = "--"
INCOMING_PREFIX = "incoming/"
CONFIG_PREFIX = "config/"
VERSION_LENGTH = 12


def dataset_version(data_sha256: str, config_fingerprint: str) -> str:
    """Same bytes + same config = same version; either changing makes a new version."""
    digest = hashlib.sha256(f"{data_sha256}:{config_fingerprint}".encode()).hexdigest()
    return digest[:VERSION_LENGTH]


def dataset_from_key(key: str) -> str | None:
    """`incoming/<dataset>/<file>` → dataset; None when the key has no dataset folder."""
    if not key.startswith(INCOMING_PREFIX):
        return None
    parts = key[len(INCOMING_PREFIX) :].split("/")
    if len(parts) < 2 or not parts[0] or not parts[-1]:
        return None
    return parts[0]


def config_keys(dataset: str) -> list[str]:
    return [f"{CONFIG_PREFIX}{dataset}.yaml", f"{CONFIG_PREFIX}{dataset}.yml", f"{CONFIG_PREFIX}{dataset}.json"]


def owned_prefix(prefix: str) -> str:
    """What every name of this stack starts with (the rules and IAM policies filter on it)."""
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError(f"name prefix {prefix!r} must be lowercase letters and digits, single '-' between them")
    return f"{prefix}{DELIMITER}"


def _fitted(name: str, limit: int = SAGEMAKER_NAME_MAX) -> str:
    """The name itself when it fits SageMaker's limit (63 characters for most names), else a
    shortened, hashed, still unique form that keeps the stack's prefix."""
    if len(name) > limit:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[: limit - 9].rstrip('-')}-{digest}"
    if not SAGEMAKER_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid SageMaker resource name")
    return name


@dataclass(frozen=True)
class RunNames:
    """Names of everything one attempt of one training run creates."""

    prefix: str
    dataset: str
    version: str
    run_index: int
    attempt: int = 1

    @property
    def run_name(self) -> str:
        """The Experiments run name (the SDK lower-cases it)."""
        suffix = f"-a{self.attempt}" if self.attempt > 1 else ""
        return f"{self.version}-r{self.run_index:02d}{suffix}"

    @property
    def label(self) -> str:
        """The run within its version: r01, or r01-a2 for its second attempt."""
        return self.run_name[len(self.version) + 1 :]

    @property
    def training_job(self) -> str:
        return _fitted(f"{owned_prefix(self.prefix)}{self.dataset}-{self.run_name}")

    @property
    def model(self) -> str:
        return self.training_job

    @property
    def transform_job(self) -> str:
        return self.training_job

    @property
    def endpoint_config(self) -> str:
        return self.training_job


def champion_transform_job(prefix: str, dataset: str, version: str, champion_version: str) -> str:
    """The batch transform that scores the champion (the model of `champion_version`, serving) on
    the test split of `version`: one per pair, whichever attempt of the version asks."""
    return _fitted(f"{owned_prefix(prefix)}{dataset}-{version}-champion-{champion_version}")


def champion_label(champion_version: str) -> str:
    """Where the champion's evaluation of a version's test split lives: evaluation/<label>/."""
    return f"champion-{champion_version}"


def evaluation_id(model_data_url: str, test_uri: str) -> str:
    """An evaluation is a model scored on a test split: the same model on the same split is the same
    evaluation, whichever run or version asks (a champion scored on a new version's split is new)."""
    return hashlib.sha256(f"{model_data_url}|{test_uri}".encode()).hexdigest()[:20]


# CreateHyperParameterTuningJob allows 32 characters; SageMaker names its training jobs
# `<tuning job>-<NNN>-<8 hex>`, so they start with the stack's prefix too (the rules filter on it).
TUNING_JOB_NAME_MAX = 32


def tuning_job_name(prefix: str, dataset: str, version: str, attempt: int) -> str:
    """The one tuning job of a Bayesian search, per attempt of a dataset version."""
    suffix = "" if attempt == 1 else f"-a{attempt}"
    return _fitted(f"{owned_prefix(prefix)}{dataset}-{version}{suffix}", TUNING_JOB_NAME_MAX)


def experiment_name(prefix: str, dataset: str) -> str:
    return f"{owned_prefix(prefix)}{dataset}"


def run_group_name(prefix: str, dataset: str, version: str) -> str:
    """The run group (SageMaker trial) that holds every run of one dataset version."""
    return f"{owned_prefix(prefix)}{dataset}-{version}"


def trial_component_name(prefix: str, dataset: str, run_name: str) -> str:
    """As the SageMaker SDK's Run names it: '<experiment>-<run>' in lower case."""
    return f"{experiment_name(prefix, dataset)}-{run_name}".lower()


def preparation_component_name(prefix: str, dataset: str, version: str) -> str:
    """The trial component in a version's run group that records its data preparation (not a run)."""
    return f"{experiment_name(prefix, dataset)}-{version}-prepare".lower()


def is_preparation_component(run_group: str, component: str) -> bool:
    """Whether a trial component of a run group is its data-preparation record rather than a run."""
    return component == f"{run_group}-prepare".lower()


def endpoint_name(prefix: str, dataset: str) -> str:
    """One stable endpoint per dataset: later versions update it in place."""
    return _fitted(f"{owned_prefix(prefix)}{dataset}")


def model_package_group_name(prefix: str, dataset: str) -> str:
    return _fitted(f"{owned_prefix(prefix)}{dataset}")


@dataclass(frozen=True)
class DatasetLocations:
    """Where the prepared artefacts of one dataset version live in the artifact bucket."""

    bucket: str
    dataset: str
    version: str
    root: str = "datasets"  # the stack's ArtifactPrefix

    @property
    def prefix(self) -> str:
        return f"{self.root}/{self.dataset}/{self.version}"

    def uri(self, relative: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}/{relative}"

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}"

    TRAIN = "train/train.csv"
    VALIDATION = "validation/validation.csv"
    # The same rows with standardised features (k-NN, Factorization Machines: datadrop.channels), and
    # those as RecordIO-protobuf, for the algorithms that read nothing else (Factorization Machines).
    TRAIN_STANDARDISED = "train-standardised/train.csv"
    VALIDATION_STANDARDISED = "validation-standardised/validation.csv"
    TRAIN_RECORDIO = "train-recordio/train.rec"
    VALIDATION_RECORDIO = "validation-recordio/validation.rec"
    # JSON Lines, one {column: raw value} object per line: a value with a line break in it cannot be cut
    # in two by a batch transform's SplitType Line (it could in CSV, as a quoted newline).
    TEST_FEATURES = "test/test.jsonl"
    TEST_LABELS = "test-labels/labels.json"
    RECIPE = "recipe.json"
    PROFILE = "profile.json"
    SERVING_BUNDLE = "serving/sourcedir.tar.gz"
    LEADERBOARD = "leaderboard.json"

    def channel_uri(self, relative_file: str) -> str:
        """S3 prefix of a channel (its folder), as SageMaker channels take prefixes."""
        return self.uri(relative_file.rsplit("/", 1)[0] + "/")

    def training_output_uri(self) -> str:
        return self.uri("training/")

    def evaluation_output_uri(self, run_label: str) -> str:
        return self.uri(f"evaluation/{run_label}/")

    def report_key(self, run_label: str) -> str:
        return self.key(f"evaluation/{run_label}/report.json")


def held_out_content_type(test_uri: str) -> str:
    """The batch transform ContentType of a version's test split: JSON Lines, or CSV for versions
    prepared before the test split was written as JSON Lines."""
    return "application/jsonlines" if test_uri.endswith(".jsonl") else "text/csv"
