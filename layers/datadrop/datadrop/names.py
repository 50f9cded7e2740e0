"""Deterministic resource names and S3 locations.

Every SageMaker name derives from (prefix, dataset, version, run index), so a re-delivered event
asks for the same name again and SageMaker's ResourceInUse tells us the work is already done.
SageMaker names must match ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
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


def _checked(name: str) -> str:
    if not SAGEMAKER_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid SageMaker resource name")
    return name


@dataclass(frozen=True)
class RunNames:
    """Names of everything one training run creates."""

    prefix: str
    dataset: str
    version: str
    run_index: int

    @property
    def run_name(self) -> str:
        """The Experiments run name (the SDK lower-cases it)."""
        return f"{self.version}-r{self.run_index:02d}"

    @property
    def training_job(self) -> str:
        return _checked(f"{self.prefix}-{self.dataset}-{self.version}-r{self.run_index:02d}")

    @property
    def model(self) -> str:
        return self.training_job

    @property
    def transform_job(self) -> str:
        return self.training_job

    @property
    def endpoint_config(self) -> str:
        return self.training_job


def parse_job_name(prefix: str, job_name: str) -> tuple[str, str, int] | None:
    """Inverse of RunNames.training_job: (dataset, version, run index), or None if not ours."""
    match = re.fullmatch(
        rf"{re.escape(prefix)}-(?P<dataset>[a-z0-9-]+)-(?P<version>[0-9a-f]{{{VERSION_LENGTH}}})-r(?P<run>\d{{2}})",
        job_name,
    )
    if not match:
        return None
    return match["dataset"], match["version"], int(match["run"])


def experiment_name(prefix: str, dataset: str) -> str:
    return f"{prefix}-{dataset}"


def run_group_name(prefix: str, dataset: str, version: str) -> str:
    """The run group (SageMaker trial) that holds every run of one dataset version."""
    return f"{prefix}-{dataset}-{version}"


def trial_component_name(prefix: str, dataset: str, run_name: str) -> str:
    """As the SageMaker SDK's Run names it: '<experiment>-<run>' in lower case."""
    return f"{experiment_name(prefix, dataset)}-{run_name}".lower()


def endpoint_name(prefix: str, dataset: str) -> str:
    """One stable endpoint per dataset: later versions update it in place."""
    return _checked(f"{prefix}-{dataset}")


def model_package_group_name(prefix: str, dataset: str) -> str:
    return _checked(f"{prefix}-{dataset}")


@dataclass(frozen=True)
class DatasetLocations:
    """Where the prepared artefacts of one dataset version live in the artifact bucket."""

    bucket: str
    dataset: str
    version: str

    @property
    def prefix(self) -> str:
        return f"datasets/{self.dataset}/{self.version}"

    def uri(self, relative: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}/{relative}"

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}"

    TRAIN = "train/train.csv"
    VALIDATION = "validation/validation.csv"
    TEST_FEATURES = "test/test.csv"
    TEST_LABELS = "test-labels/labels.json"
    RECIPE = "recipe.json"
    PROFILE = "profile.json"
    SERVING_BUNDLE = "serving/sourcedir.tar.gz"

    def channel_uri(self, relative_file: str) -> str:
        """S3 prefix of a channel (its folder), as SageMaker channels take prefixes."""
        return self.uri(relative_file.rsplit("/", 1)[0] + "/")

    def training_output_uri(self) -> str:
        return self.uri("training/")

    def evaluation_output_uri(self, run_index: int) -> str:
        return self.uri(f"evaluation/r{run_index:02d}/")

    def report_key(self, run_index: int) -> str:
        return self.key(f"evaluation/r{run_index:02d}/report.json")
