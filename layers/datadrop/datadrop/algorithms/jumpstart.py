"""What SageMaker's JumpStart "script mode" tabular algorithms share (LightGBM, CatBoost,
AutoGluon-Tabular, TabTransformer): a framework container (PyTorch or AutoGluon deep learning
container) running a training script that JumpStart keeps in its regional bucket, with a pretrained
model artifact in a `model` channel.

Sources:
- The model specs (image framework/version, script and artifact keys, hyperparameters, inference
  environment): the SageMaker Python SDK's JumpStart spec fixtures
  (aws/sagemaker-python-sdk v2.257.6, tests/unit/sagemaker/jumpstart/constants.py:
  "lightgbm-classification-model" and "catboost-classification-model" v2.1.6,
  "autogluon-classification-ensemble" v1.1.1). Keys the fixtures do not hold are marked UNVERIFIED
  where they are declared (in the algorithm modules).
- How the SDK builds the request: sagemaker/estimator.py `_json_encode_hyperparameters`
  (every value json.dumps-ed) and `_script_mode_hyperparam_update` (sagemaker_submit_directory,
  sagemaker_program, sagemaker_container_log_level, sagemaker_job_name, sagemaker_region);
  JumpStart models train with network isolation, so the SDK delivers the script in a `code` channel
  and points sagemaker_submit_directory at CONTAINER_CODE_CHANNEL_SOURCEDIR_PATH
  (/opt/ml/input/data/code/sourcedir.tar.gz, also the spec's default for that hyperparameter);
  sagemaker/job.py `_load_config` adds the `model` channel (ContentType
  application/x-sagemaker-model, InputMode File, FullyReplicated) and the `code` channel.
- The SDK's script_uris prefers a model's `training_prepacked_script_key`: that script copies the
  inference code into the trained model.tar.gz (`copy_inference_code(dst_path=model_dir)`), and the
  model then serves with SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code (spec
  `inference_environment_variables`, `hosting_use_script_uri: False`).

Registry accounts are vendored from the SDK's image_uri_config/pytorch.json and autogluon.json
(like algorithms/images.py); tests/unit/test_jumpstart.py checks every region against
`sagemaker.core.image_uris.retrieve`. Lambda imports this: standard library only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from datadrop.algorithms.base import Algorithm, AlgorithmError, DataFacts, TrainingLaunch
from datadrop.algorithms.images import UnsupportedRegion, ecr_image_uri

# Deep learning container registries, per region (pytorch.json "training" 1.9.0 and "inference"
# 2.0.1 list the same accounts; autogluon.json 0.4.3 uses the same account where it has the region).
DLC_REGISTRIES: dict[str, str] = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-east-2": "975050140332",
    "ap-northeast-1": "763104351884",
    "ap-northeast-2": "763104351884",
    "ap-northeast-3": "364406365360",
    "ap-south-1": "763104351884",
    "ap-south-2": "772153158452",
    "ap-southeast-1": "763104351884",
    "ap-southeast-2": "763104351884",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ap-southeast-5": "550225433462",
    "ap-southeast-6": "633930458069",
    "ap-southeast-7": "590183813437",
    "ca-central-1": "763104351884",
    "ca-west-1": "204538143572",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "eu-central-1": "763104351884",
    "eu-central-2": "380420809688",
    "eu-north-1": "763104351884",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "eu-west-1": "763104351884",
    "eu-west-2": "763104351884",
    "eu-west-3": "763104351884",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "mx-central-1": "637423239942",
    "sa-east-1": "763104351884",
    "us-east-1": "763104351884",
    "us-east-2": "763104351884",
    "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353",
    "us-iso-east-1": "886529160074",
    "us-isob-east-1": "094389454867",
    "us-west-1": "763104351884",
    "us-west-2": "763104351884",
}
_NOT_IN_AUTOGLUON_0_4_3 = {"ap-east-2", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "mx-central-1"}
_AUTOGLUON_TRAINING_REGIONS = frozenset(DLC_REGISTRIES) - _NOT_IN_AUTOGLUON_0_4_3 - {"cn-north-1", "cn-northwest-1"}
_AUTOGLUON_INFERENCE_REGIONS = frozenset(DLC_REGISTRIES) - _NOT_IN_AUTOGLUON_0_4_3

# Where JumpStart hosts these models: the regions of the specs' `regional_aliases`
# (lightgbm-classification-model / catboost-classification-model v2.1.6).
JUMPSTART_REGIONS = frozenset(
    {
        "af-south-1",
        "ap-east-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-5",
        "ca-central-1",
        "cn-north-1",
        "cn-northwest-1",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-gov-east-1",
        "us-gov-west-1",
        "us-west-1",
        "us-west-2",
    }
)

# Script-mode hyperparameters the SageMaker training toolkit reads (sagemaker/model.py constants).
SUBMIT_DIRECTORY = "sagemaker_submit_directory"
PROGRAM = "sagemaker_program"
CONTAINER_LOG_LEVEL = "sagemaker_container_log_level"
REGION = "sagemaker_region"
JOB_NAME = "sagemaker_job_name"  # the SDK sets it to the job's name; datadrop's request builder may too
CODE_CHANNEL = "code"
MODEL_CHANNEL = "model"
CODE_CHANNEL_SOURCEDIR = "/opt/ml/input/data/code/sourcedir.tar.gz"  # estimator.CONTAINER_CODE_CHANNEL_SOURCEDIR_PATH
TRAINING_PROGRAM = "transfer_learning.py"
INFERENCE_PROGRAM = "inference.py"
LOG_LEVEL_INFO = "20"  # logging.INFO, the SDK's default container_log_level
MODEL_CONTENT_TYPE = "application/x-sagemaker-model"
PREPACKED_CODE_DIR = "/opt/ml/model/code"


@dataclass(frozen=True)
class FrameworkImage:
    """A deep learning container: `image_uris.retrieve(framework, region, version, py_version,
    instance_type=<cpu>, image_scope=scope)`."""

    framework: str  # "pytorch" | "autogluon"
    scope: str  # "training" | "inference"
    version: str
    py_version: str
    regions: frozenset[str]

    @property
    def repository(self) -> str:
        return f"{self.framework}-{self.scope}"

    def uri(self, region: str) -> str:
        registries = {r: DLC_REGISTRIES[r] for r in self.regions}
        return ecr_image_uri(region, registries, self.repository, f"{self.version}-cpu-{self.py_version}")


PYTORCH_1_9_TRAINING = FrameworkImage("pytorch", "training", "1.9.0", "py38", frozenset(DLC_REGISTRIES))
PYTORCH_2_0_INFERENCE = FrameworkImage("pytorch", "inference", "2.0.1", "py310", frozenset(DLC_REGISTRIES))
AUTOGLUON_0_4_TRAINING = FrameworkImage("autogluon", "training", "0.4.3", "py38", _AUTOGLUON_TRAINING_REGIONS)
AUTOGLUON_0_4_INFERENCE = FrameworkImage("autogluon", "inference", "0.4.3", "py38", _AUTOGLUON_INFERENCE_REGIONS)
IMAGES = (PYTORCH_1_9_TRAINING, PYTORCH_2_0_INFERENCE, AUTOGLUON_0_4_TRAINING, AUTOGLUON_0_4_INFERENCE)


@dataclass(frozen=True)
class JumpStartModel:
    """One JumpStart model id (the classification or the regression variant of an algorithm)."""

    model_id: str
    training_image: FrameworkImage
    inference_image: FrameworkImage
    training_script_key: str  # under s3://jumpstart-cache-prod-{region}/
    training_artifact_key: str  # the pretrained model.tar.gz of the `model` channel
    inference_script_key: str | None = None  # None: prepacked, the trained model.tar.gz carries code/inference.py

    def training_script_uri(self, region: str) -> str:
        return jumpstart_uri(region, self.training_script_key)

    def training_artifact_uri(self, region: str) -> str:
        return jumpstart_uri(region, self.training_artifact_key)

    def inference_script_uri(self, region: str) -> str | None:
        return None if self.inference_script_key is None else jumpstart_uri(region, self.inference_script_key)


def jumpstart_bucket(region: str) -> str:
    """JumpStart's regional content bucket (sagemaker/jumpstart/region_config.json: jumpstart-cache-prod-{region})."""
    if region not in JUMPSTART_REGIONS:
        raise UnsupportedRegion(
            f"SageMaker JumpStart has no tabular models in {region}; supported: {', '.join(sorted(JUMPSTART_REGIONS))}"
        )
    return f"jumpstart-cache-prod-{region}"


def is_jumpstart_content(uri: str) -> bool:
    """An object in one of JumpStart's regional content buckets."""
    return uri.startswith("s3://jumpstart-cache-prod-")


def jumpstart_uri(region: str, key: str) -> str:
    return f"s3://{jumpstart_bucket(region)}/{key}"


def encode_hyperparameters(plain: dict[str, str]) -> dict[str, str]:
    """The SDK's `_json_encode_hyperparameters`: every value json.dumps-ed. datadrop's values are
    strings (as the config and the SDK's `hyperparameters.retrieve_default` give them), so "500"
    travels as "\\"500\\"" and the script's argparse `type=int` reads it back."""
    return {key: json.dumps(value) for key, value in plain.items()}


def decode_hyperparameters(request: dict[str, str]) -> dict[str, str]:
    """The inverse of `encode_hyperparameters`, leaving out the toolkit's sagemaker_* keys."""
    plain: dict[str, str] = {}
    for key, value in request.items():
        if key.startswith("sagemaker_"):
            continue
        try:
            decoded = json.loads(value)
        except ValueError:
            decoded = value  # not JSON: a request written by hand; keep it as it is
        plain[key] = decoded if isinstance(decoded, str) else json.dumps(decoded)
    return plain


def s3_channel(name: str, uri: str, content_type: str | None = None) -> dict[str, Any]:
    """A CreateTrainingJob channel as sagemaker/inputs.py TrainingInput writes it (S3Prefix, FullyReplicated, File)."""
    channel: dict[str, Any] = {
        "ChannelName": name,
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}},
        "InputMode": "File",
    }
    if content_type:
        channel["ContentType"] = content_type
    return channel


class JumpStartAlgorithm(Algorithm):
    """A JumpStart script-mode tabular algorithm; subclasses declare their models and metrics."""

    classification: ClassVar[JumpStartModel | None] = None
    regression: ClassVar[JumpStartModel | None] = None
    # The JumpStart scripts read the training data from SM_CHANNEL_TRAINING ("training"); LightGBM's
    # and CatBoost's docs also accept "train". Channel files: headerless CSV, label first; every CSV
    # file of the channel is read (docs: "the algorithm concatenates the files").
    train_channel: ClassVar[str] = "train"

    # --- what the subclasses say -------------------------------------------------------------
    def metric_definitions(self, plain: dict[str, str]) -> list[dict[str, str]]:
        """MetricDefinitions for the job: these containers emit no metrics of their own, SageMaker
        reads them from the log with these regexes."""
        raise NotImplementedError

    def problem_kind(self, plain: dict[str, str]) -> str:
        """ "classification" or "regression", from the derived hyperparameters the request carries."""
        raise NotImplementedError

    # --- shared -----------------------------------------------------------------------------
    def model(self, kind: str) -> JumpStartModel:
        model = self.classification if kind == "classification" else self.regression if kind == "regression" else None
        if model is None:
            raise AlgorithmError(f"{self.title} has no JumpStart model for {kind} problems")
        return model

    def model_for_problem(self, problem_type: str) -> JumpStartModel:
        self.check_problem_type(problem_type)
        return self.model("regression" if problem_type == "regression" else "classification")

    def supported_regions(self, model: JumpStartModel) -> frozenset[str]:
        return JUMPSTART_REGIONS & model.training_image.regions & model.inference_image.regions

    def _check_region(self, region: str, model: JumpStartModel) -> None:
        regions = self.supported_regions(model)
        if region not in regions:
            raise UnsupportedRegion(
                f"{self.title} ({model.model_id}) is not available in {region}; supported: {', '.join(sorted(regions))}"
            )

    def training(self, region: str, hyperparameters: dict[str, str]) -> TrainingLaunch:
        plain = {k: v for k, v in hyperparameters.items() if not k.startswith("sagemaker_")}
        model = self.model(self.problem_kind(plain))
        self._check_region(region, model)
        request = encode_hyperparameters(plain)
        request.update(
            encode_hyperparameters(
                {
                    SUBMIT_DIRECTORY: CODE_CHANNEL_SOURCEDIR,
                    PROGRAM: TRAINING_PROGRAM,
                    CONTAINER_LOG_LEVEL: LOG_LEVEL_INFO,
                    REGION: region,
                }
            )
        )
        algorithm_specification: dict[str, Any] = {
            "TrainingImage": model.training_image.uri(region),
            "TrainingInputMode": "File",
            "MetricDefinitions": self.metric_definitions(plain),
        }
        extra_channels = [
            s3_channel(MODEL_CHANNEL, model.training_artifact_uri(region), MODEL_CONTENT_TYPE),
            s3_channel(CODE_CHANNEL, model.training_script_uri(region)),
        ]
        return TrainingLaunch(algorithm_specification, request, extra_channels)

    def plain_hyperparameters(self, request_hyperparameters: dict[str, str]) -> dict[str, str]:
        return decode_hyperparameters(request_hyperparameters)

    def inference_container(self, region: str, model_data_url: str, problem_type: str) -> dict[str, Any]:
        """The model's container: the spec's `inference_environment_variables`. A prepacked model
        (the trained model.tar.gz carries code/inference.py) serves from /opt/ml/model/code; one
        without (AutoGluon) gets the inference script's S3 URI, which depends on the problem type."""
        model = self.model_for_problem(problem_type)
        self._check_region(region, model)
        script_uri = model.inference_script_uri(region)
        environment = {
            "SAGEMAKER_PROGRAM": INFERENCE_PROGRAM,
            "SAGEMAKER_SUBMIT_DIRECTORY": script_uri or PREPACKED_CODE_DIR,
            "SAGEMAKER_CONTAINER_LOG_LEVEL": LOG_LEVEL_INFO,
            "SAGEMAKER_REGION": region,
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": "3600",
            "ENDPOINT_SERVER_TIMEOUT": "3600",
            "MODEL_CACHE_ROOT": "/opt/ml/model",
            "SAGEMAKER_ENV": "1",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
        }
        return {"Image": model.inference_image.uri(region), "ModelDataUrl": model_data_url, "Environment": environment}

    def derived_hyperparameters(self, facts: DataFacts) -> dict[str, str]:
        self.check_problem_type(facts.problem_type)
        return self.derived_for(facts.problem_type)

    def derived_for(self, problem_type: str) -> dict[str, str]:
        """The data-decided hyperparameters (the metric the script would pick by itself, made explicit
        so the request says which model, classification or regression, it trains)."""
        raise NotImplementedError


def metric_regex(prefix: str) -> str:
    """A metric value after `prefix`: digits, a point, an exponent (LightGBM logs with %g)."""
    return prefix + r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
