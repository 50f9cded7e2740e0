"""AWS mode under moto, every algorithm datadrop trains: the penguins uploaded with a config naming
one algorithm, then each SageMaker request the handlers make, call by call (every request also
checked against the service model, tests/strict_requests.py): CreateTrainingJob (image, channels and
their content types, JumpStart's `model` and `code` channels, hyperparameters as the container reads
them, MetricDefinitions, the algorithm tag), CreateModel (one container for XGBoost, an inference
pipeline of three for the others), CreateTransformJob, CreateModelPackage and CreateEndpointConfig.
The test plays SageMaker's part where moto cannot, as test_aws_flow does: it delivers the documented
state-change events and writes the batch transform's output.

Images are compared with the SageMaker Python SDK's own offline tables (`sagemaker.core.image_uris.retrieve`).
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from datadrop import algorithms, recordio
from datadrop.algorithms.base import CSV, JSON, JSONLINES, RECORDIO_PROTOBUF
from datadrop.algorithms.images import SKLEARN_VERSION, XGBOOST_VERSION
from datadrop.algorithms.jumpstart import JumpStartAlgorithm
from datadrop.storage import split_s3_uri

from tests.conftest import sample_event
from tests.integration.conftest import AwsHarness, envelope

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "penguins"
REGION = "us-east-1"
FIRST_PARTY = {"linear-learner", "knn", "factorization-machines"}
JUMPSTART = {"lightgbm", "catboost", "autogluon", "tabtransformer"}
# Factorization Machines does binary classification and regression only: it predicts the penguins' sex.
BINARY_ONLY = {"factorization-machines"}
# What each pipeline's preprocessing stage sends the algorithm's container, and what it asks back
# (the formats each container documents; see the algorithm modules' docstrings).
CONTAINER_IO = {
    "linear-learner": (CSV, JSON),
    "knn": (JSONLINES, JSONLINES),
    "factorization-machines": (JSON, JSON),
    "lightgbm": (CSV, JSON),
    "catboost": (CSV, JSON),
    "autogluon": (CSV, JSON),
    "tabtransformer": (CSV, JSON),
}
# The framework images the JumpStart specs pin (SageMaker Python SDK JumpStart spec fixtures; see
# datadrop/algorithms/jumpstart.py): (framework, version, py_version) for training and for inference.
JUMPSTART_IMAGES = {
    "lightgbm": (("pytorch", "1.9.0", "py38"), ("pytorch", "2.0.1", "py310")),
    "catboost": (("pytorch", "1.9.0", "py38"), ("pytorch", "2.0.1", "py310")),
    "autogluon": (("autogluon", "0.4.3", "py38"), ("autogluon", "0.4.3", "py38")),
    "tabtransformer": (("pytorch", "1.9.0", "py38"), ("pytorch", "2.0.1", "py310")),
}
# The multiclass metric each JumpStart script is told to use (a datadrop-derived hyperparameter).
JUMPSTART_METRIC = {
    "lightgbm": ("metric", "multi_logloss"),
    "catboost": ("eval_metric", "MultiClass"),
    "autogluon": ("eval_metric", "accuracy"),
    "tabtransformer": ("problem_type", "multiclass"),
}
ENVIRONMENT_LIMIT = 32 * 1024  # API_ContainerDefinition: all Environment maps of a CreateModel, combined


@cache
def _image_uris() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sagemaker.core import image_uris
    return image_uris


def _framework_image(framework: str, version: str, py_version: str, scope: str) -> str:
    return str(
        _image_uris().retrieve(
            framework, REGION, version=version, py_version=py_version, instance_type="ml.m5.xlarge", image_scope=scope
        )
    )


def _images(name: str) -> tuple[str, str]:
    """(training image, inference image) as the SDK retrieves them."""
    if name == "xgboost":
        image = str(_image_uris().retrieve("xgboost", REGION, XGBOOST_VERSION))
        return image, image
    if name in FIRST_PARTY:
        image = str(_image_uris().retrieve(name, REGION))
        return image, image
    training, inference = JUMPSTART_IMAGES[name]
    return _framework_image(*training, scope="training"), _framework_image(*inference, scope="inference")


def _sklearn_image() -> str:
    return str(
        _image_uris().retrieve(
            "sklearn", REGION, version=SKLEARN_VERSION, py_version="py3", instance_type="ml.m5.large", image_scope="inference"
        )
    )


def _prepare(aws: AwsHarness, name: str) -> dict[str, Any]:
    target = "sex" if name in BINARY_ONLY else "species"
    aws.put_config("penguins", f"target: {target}\ndrop_columns: [year]\nthreshold: 0.5\nalgorithms: [{name}]\n")
    uploaded = aws.upload("incoming/penguins/penguins.csv", (EXAMPLE / "penguins.csv").read_bytes())
    event = aws.upload_event(uploaded)
    result = aws.invoke("prepare", event)
    assert result["outcome"] == "prepared", result
    (prepared,) = aws.details("DatasetPrepared")
    assert prepared["problem_type"] == ("binary" if name in BINARY_ONLY else "multiclass")
    assert [choice["name"] for choice in prepared["algorithms"]] == [name]
    return prepared


def _objects(aws: AwsHarness, prefix_uri: str) -> list[bytes]:
    bucket, prefix = split_s3_uri(prefix_uri)
    listed = aws.services.objects.client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return [aws.services.objects.read(bucket, item["Key"]) for item in listed]


def _write_transform_output(aws: AwsHarness, prepared: dict[str, Any], transform: dict[str, Any], labels_only: bool) -> None:
    """Play the batch transform: what the pipeline's postprocessing stage (or XGBoost's script) answers,
    one JSON line per test row, every one right; k-NN answers labels only."""
    labels = json.loads(aws.services.objects.read_uri(prepared["artifacts"]["test_labels"]))
    classes = prepared["classes"]
    lines = []
    for label in labels:
        answer: dict[str, Any] = {"label": label}
        if not labels_only:
            answer["probabilities"] = {c: (0.9 if c == label else 0.1 / (len(classes) - 1)) for c in classes}
        lines.append(json.dumps(answer))
    bucket, prefix = split_s3_uri(transform["TransformOutput"]["S3OutputPath"])
    test_file = split_s3_uri(transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"])[1].rsplit("/", 1)[-1]
    aws.services.objects.write(bucket, f"{prefix}{test_file}.out", ("\n".join(lines) + "\n").encode())


def _check_training_job(aws: AwsHarness, name: str, prepared: dict[str, Any], training: dict[str, Any]) -> None:
    algorithm = algorithms.get(name)
    artifacts = prepared["artifacts"]
    training_image, _ = _images(name)
    specification = training["AlgorithmSpecification"]
    assert specification["TrainingImage"] == training_image
    assert specification["TrainingInputMode"] == "File"
    assert {"Key": "datadrop:algorithm", "Value": name} in training["Tags"]

    channels = {channel["ChannelName"]: channel for channel in training["InputDataConfig"]}
    data_channels = {key: channels.pop(key) for key in ("train", "validation") if key in channels}
    # k-NN and Factorization Machines take train (and test) only; the others early-stop on validation.
    assert list(data_channels) == (["train"] if name in {"knn", "factorization-machines"} else ["train", "validation"])
    for split, channel in data_channels.items():
        uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
        if name == "factorization-machines":
            assert channel["ContentType"] == RECORDIO_PROTOBUF
            assert uri == artifacts[f"{split}_recordio"] and uri.endswith(f"/{split}-recordio/")
        elif name == "knn":
            assert channel["ContentType"] == CSV
            assert uri == artifacts[f"{split}_standardised"] and uri.endswith(f"/{split}-standardised/")
        else:
            assert channel["ContentType"] == CSV
            assert uri == artifacts[split] and uri.endswith(f"/{split}/")
        assert channel["DataSource"]["S3DataSource"]["S3DataType"] == "S3Prefix"
        assert _objects(aws, uri), f"nothing under the {split} channel's prefix {uri}"

    hyperparameters = training["HyperParameters"]
    feature_dim = str(prepared["feature_dim"])
    if name in JUMPSTART:
        assert isinstance(algorithm, JumpStartAlgorithm)
        model = algorithm.model("classification")
        # what the declaration pins is what the SDK's spec pins
        training_pin, inference_pin = JUMPSTART_IMAGES[name]
        assert (model.training_image.framework, model.training_image.version, model.training_image.py_version) == training_pin
        assert (model.inference_image.framework, model.inference_image.version, model.inference_image.py_version) == inference_pin
        assert set(channels) == {"model", "code"}
        model_channel, code_channel = channels["model"], channels["code"]
        assert model_channel["ContentType"] == "application/x-sagemaker-model"
        model_uri = model_channel["DataSource"]["S3DataSource"]["S3Uri"]
        assert model_uri == f"s3://jumpstart-cache-prod-{REGION}/{model.training_artifact_key}"
        assert model_uri.endswith(f"/train-{model.model_id}.tar.gz") and "classification" in model.model_id
        assert "ContentType" not in code_channel
        code_uri = code_channel["DataSource"]["S3DataSource"]["S3Uri"]
        assert code_uri == f"s3://jumpstart-cache-prod-{REGION}/{model.training_script_key}"
        assert code_uri.endswith("/sourcedir.tar.gz")
        # script mode: every value JSON-encoded (the SDK's _json_encode_hyperparameters), the toolkit's keys beside them
        decoded = {key: json.loads(value) for key, value in hyperparameters.items()}
        assert all(isinstance(value, str) for value in decoded.values()), hyperparameters
        assert decoded["sagemaker_program"] == "transfer_learning.py"
        assert decoded["sagemaker_submit_directory"] == "/opt/ml/input/data/code/sourcedir.tar.gz"
        assert decoded["sagemaker_region"] == REGION
        assert decoded["sagemaker_container_log_level"] == "20"
        key, value = JUMPSTART_METRIC[name]
        assert decoded[key] == value
        # the container emits no metrics of its own: SageMaker reads them from the log
        definitions = specification["MetricDefinitions"]
        assert definitions and all(definition["Regex"] for definition in definitions)
        objective = algorithm.tuning_objective("multiclass")["MetricName"]
        assert objective in {definition["Name"] for definition in definitions}
    else:
        assert channels == {}, channels
        assert "MetricDefinitions" not in specification  # first-party containers publish their own
        assert all(isinstance(value, str) and not value.startswith('"') for value in hyperparameters.values())
        expected = {
            "xgboost": {"objective": "multi:softprob", "num_class": "3", "eval_metric": "mlogloss"},
            "linear-learner": {"predictor_type": "multiclass_classifier", "num_classes": "3", "feature_dim": feature_dim},
            "knn": {
                "predictor_type": "classifier",
                "feature_dim": feature_dim,
                "k": "10",
                "sample_size": str(prepared["rows"]["train"]),
            },
            "factorization-machines": {"predictor_type": "binary_classifier", "feature_dim": feature_dim},
        }[name]
        assert {key: hyperparameters.get(key) for key in expected} == expected
        if name == "factorization-machines":
            assert int(hyperparameters["num_factors"]) > 0  # required by the container


def _check_model(name: str, prepared: dict[str, Any], model: dict[str, Any], model_data_url: str) -> list[dict[str, Any]]:
    """The model's containers, checked; returned for the registry's comparison."""
    bundle = prepared["artifacts"]["serving_bundle"]
    _, inference_image = _images(name)
    if name == "xgboost":
        assert "Containers" not in model and "InferenceExecutionConfig" not in model
        container = model["PrimaryContainer"]
        assert container["Image"] == inference_image and container["ModelDataUrl"] == model_data_url
        assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == bundle
        assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
        return [container]
    assert "PrimaryContainer" not in model
    assert model["InferenceExecutionConfig"] == {"Mode": "Serial"}
    preprocess, own, postprocess = model["Containers"]
    request_type, accept = CONTAINER_IO[name]
    algorithm = algorithms.get(name)
    for stage, container, default_accept in (("preprocess", preprocess, request_type), ("postprocess", postprocess, CSV)):
        environment = container["Environment"]
        assert container["Image"] == _sklearn_image()
        assert container["ModelDataUrl"] == bundle and bundle.endswith(".tar.gz")
        assert environment["SAGEMAKER_PROGRAM"] == "inference.py" and environment["SAGEMAKER_SUBMIT_DIRECTORY"] == bundle
        assert environment["DATADROP_STAGE"] == stage
        assert environment["DATADROP_ALGORITHM"] == name
        assert environment["SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"] == default_accept
        io_settings = json.loads(environment["DATADROP_ALGORITHM_IO"])
        assert (io_settings["request_content_type"], io_settings["accept"]) == (request_type, accept)
        assert io_settings["standardise"] is (name in {"knn", "factorization-machines"})
    assert own["Image"] == inference_image
    assert own["ModelDataUrl"] == model_data_url
    assert own["Environment"]["SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"] == accept
    assert not any(key.startswith("DATADROP_") for key in own["Environment"])
    if name in JUMPSTART:
        assert own["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
        expected_code = (
            f"s3://jumpstart-cache-prod-{REGION}/source-directory-tarballs/autogluon/inference/classification/v1.0.0/sourcedir.tar.gz"
            if name == "autogluon"
            else "/opt/ml/model/code"  # prepacked: the trained model.tar.gz carries code/inference.py
        )
        assert own["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == expected_code
    size = sum(len(k.encode()) + len(v.encode()) for c in model["Containers"] for k, v in c.get("Environment", {}).items())
    assert size <= ENVIRONMENT_LIMIT
    assert algorithm.response is not None
    return list(model["Containers"])


def _check_recordio(aws: AwsHarness, prepared: dict[str, Any]) -> None:
    """The RecordIO channels hold the standardised CSV's rows, label and features, as float32."""
    artifacts = prepared["artifacts"]
    for split in ("train", "validation"):
        (encoded,) = _objects(aws, artifacts[f"{split}_recordio"])
        (standardised,) = _objects(aws, artifacts[f"{split}_standardised"])
        rows = list(csv.reader(io.StringIO(standardised.decode())))
        records = list(recordio.read_records(encoded))
        assert len(records) == len(rows) == prepared["rows"][split]
        for (label, features), row in zip(records, rows, strict=True):
            assert label == pytest.approx(float(row[0]))
            assert features == pytest.approx([float(value) for value in row[1:]], rel=1e-6, abs=1e-6)
            assert len(features) == prepared["feature_dim"]
        assert {label for label, _ in records} == {0.0, 1.0}


@pytest.mark.parametrize("name", algorithms.names())
def test_every_algorithm_issues_requests_sagemaker_accepts(aws: AwsHarness, name: str) -> None:
    prepared = _prepare(aws, name)
    job = f"datadrop--penguins-{prepared['version']}-r01"

    # DatasetPrepared → CreateTrainingJob in the algorithm's own terms
    aws.invoke("train", envelope("DatasetPrepared", prepared))
    (training,) = aws.requests("CreateTrainingJob")
    assert training["TrainingJobName"] == job
    _check_training_job(aws, name, prepared, training)
    if name == "factorization-machines":
        _check_recordio(aws, prepared)

    # Training Completed → the model (one container, or a pipeline of three), the batch transform of the raw test rows
    aws.invoke("evaluate", sample_event("evaluate_training_job_completed.json", TrainingJobName=job))
    artifact = aws.services.sagemaker.describe_training_job(TrainingJobName=job)["ModelArtifacts"]["S3ModelArtifacts"]
    (model,) = aws.requests("CreateModel")
    assert model["ModelName"] == job
    containers = _check_model(name, prepared, model, artifact)
    (transform,) = aws.requests("CreateTransformJob")
    assert transform["ModelName"] == job
    transform_input = transform["TransformInput"]
    # JSON Lines, split by line: a record holds no raw line break, so SageMaker never cuts one in two
    assert (transform_input["ContentType"], transform_input["SplitType"]) == ("application/jsonlines", "Line")
    test_uri = transform_input["DataSource"]["S3DataSource"]["S3Uri"]
    assert test_uri == prepared["artifacts"]["test"]
    # raw rows, as a client sends them: the pipeline's first container (or XGBoost's script) encodes them
    (raw_test,) = _objects(aws, test_uri)
    records = [json.loads(line) for line in raw_test.decode().split("\n")[:-1]]  # arrays of the columns but the target
    recipe = json.loads(aws.services.objects.read_uri(prepared["artifacts"]["recipe"]))
    island = [name for name in recipe["columns"] if name != recipe["target"]].index("island")
    assert len(records) == prepared["rows"]["test"] and {record[island] for record in records} <= {
        "Biscoe",
        "Dream",
        "Torgersen",
    }

    # Transform Completed → scored → approved; the registry's package has the model's containers
    _write_transform_output(aws, prepared, transform, labels_only=name == "knn")
    aws.invoke("evaluate", sample_event("evaluate_transform_job_completed.json", TransformJobName=job))
    (approved,) = aws.details("ModelApproved")
    assert approved["value"] == pytest.approx(1.0)
    (package,) = aws.requests("CreateModelPackage")
    assert package["InferenceSpecification"]["Containers"] == containers
    assert package["ModelApprovalStatus"] == "Approved"

    # ModelApproved → the endpoint config serves that model
    aws.invoke("deploy", envelope("ModelApproved", approved))
    (config,) = aws.requests("CreateEndpointConfig")
    (variant,) = config["ProductionVariants"]
    assert variant["ModelName"] == job
    assert variant["InstanceType"] == aws.settings.endpoint_instance_type
