"""AWS mode under moto, regression: the penguins' body mass as the target. The requests SageMaker
gets (squared-error objective, rmse on the validation channel, a tuning job that minimises it),
the scoring of the batch transform's numbers, the Experiments metrics, and a decision by a
lower-is-better threshold. The test plays SageMaker's part where moto cannot, as test_aws_flow does.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from datadrop.storage import split_s3_uri

from tests.conftest import sample_event
from tests.integration.conftest import AwsHarness, envelope

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "penguins"
CONFIG = "target: body_mass_g\nmetric: rmse\nthreshold: 400\n"


def _prepare(aws: AwsHarness, config: str = CONFIG, dataset: str = "mass") -> dict[str, Any]:
    aws.put_config(dataset, config)
    uploaded = aws.upload(f"incoming/{dataset}/penguins.csv", (EXAMPLE / "penguins.csv").read_bytes())
    event = aws.upload_event(uploaded)
    result = aws.invoke("prepare", event)
    assert result["outcome"] == "prepared", result
    (prepared,) = aws.details("DatasetPrepared")
    return prepared


def _record_metrics(aws: AwsHarness) -> list[dict[str, Any]]:
    """Every BatchPutMetrics request (what the Experiments run shows), as sent."""
    sent: list[dict[str, Any]] = []
    aws.services.experiments.metrics_client.meta.events.register(
        "before-parameter-build.sagemaker-metrics.BatchPutMetrics", lambda params, **_: sent.append(copy.deepcopy(params))
    )
    return sent


def _train_and_score(aws: AwsHarness, prepared: dict[str, Any], error: float) -> list[float]:
    """Train, then play the batch transform: every prediction `error` above the truth."""
    job = f"datadrop--mass-{prepared['version']}-r01"
    aws.invoke("train", envelope("DatasetPrepared", prepared))
    aws.invoke("evaluate", sample_event("evaluate_training_job_completed.json", TrainingJobName=job))
    truths = json.loads(aws.services.objects.read_uri(prepared["artifacts"]["test_labels"]))
    (transform,) = aws.requests("CreateTransformJob")
    bucket, prefix = split_s3_uri(transform["TransformOutput"]["S3OutputPath"])
    lines = [json.dumps({"value": truth + error}) for truth in truths]
    aws.services.objects.write(bucket, prefix + "test.jsonl.out", ("\n".join(lines) + "\n").encode())
    aws.invoke("evaluate", sample_event("evaluate_transform_job_completed.json", TransformJobName=job))
    return truths


def test_a_regression_trains_squared_error_and_is_approved_by_its_rmse(aws: AwsHarness) -> None:
    prepared = _prepare(aws)
    assert prepared["problem_type"] == "regression" and prepared["classes"] == []
    assert (prepared["metric"], prepared["threshold"]) == ("rmse", 400.0)
    assert prepared["quality"]["rows_dropped"] == {"missing_target": 2}
    profile = json.loads(aws.services.objects.read_uri(prepared["artifacts"]["profile"]))
    assert profile["target"]["problem_type"] == "regression" and profile["target"]["summary"]["min"] == 2700.0
    metrics_sent = _record_metrics(aws)

    truths = _train_and_score(aws, prepared, error=100.0)
    (training,) = aws.requests("CreateTrainingJob")
    hyperparameters = training["HyperParameters"]
    assert (hyperparameters["objective"], hyperparameters["eval_metric"]) == ("reg:squarederror", "rmse")
    assert "num_class" not in hyperparameters

    (evaluated,) = aws.details("RunEvaluated")
    scored = evaluated["run"]["metrics"]
    mean = sum(truths) / len(truths)
    expected_r2 = 1 - len(truths) * 100.0**2 / sum((truth - mean) ** 2 for truth in truths)
    assert scored["rmse"] == pytest.approx(100.0) and scored["mae"] == pytest.approx(100.0)
    assert scored["r2"] == pytest.approx(expected_r2)
    assert scored["mape"] == pytest.approx(sum(100.0 / truth for truth in truths) / len(truths))
    report = json.loads(aws.services.objects.read_uri(evaluated["report"]))
    extras = report["datadrop"]
    assert extras["mean_error"] == pytest.approx(100.0) and extras["mape_skipped_rows"] == 0
    assert report["regression_metrics"]["rmse"]["value"] == pytest.approx(100.0)
    logged = {metric["MetricName"]: metric["Value"] for request in metrics_sent for metric in request["MetricData"]}
    assert {name: logged[name] for name in ("test:rmse", "test:mae", "test:r2", "test:mape")} == pytest.approx(
        {f"test:{name}": value for name, value in scored.items()}
    )

    (approved,) = aws.details("ModelApproved")
    assert approved["metric"] == "rmse" and approved["value"] == pytest.approx(100.0)
    assert approved["reason"] == "held-out rmse 100.0000 <= threshold 400.0000"
    leaderboard = json.loads(aws.services.objects.read_uri(approved["leaderboard"]))
    assert leaderboard["metric"] == "rmse" and leaderboard["higher_is_better"] is False


def test_an_rmse_above_the_threshold_is_rejected(aws: AwsHarness) -> None:
    prepared = _prepare(aws)
    _train_and_score(aws, prepared, error=-500.0)
    assert aws.details("ModelApproved") == []
    (rejected,) = aws.details("ModelRejected")
    assert rejected["value"] == pytest.approx(500.0)
    assert rejected["reason"] == "held-out rmse 500.0000 > threshold 400.0000: not deployed"
    package = aws.services.sagemaker.describe_model_package(ModelPackageName=rejected["model_package_arn"])
    assert package["ModelApprovalStatus"] == "Rejected"


def test_a_bayesian_search_of_a_regression_minimises_the_validation_rmse(aws: AwsHarness) -> None:
    config = "target: body_mass_g\nhyperparameters: {max_depth: [2, 4]}\nsearch: {strategy: bayesian, max_runs: 2}\n"
    prepared = _prepare(aws, config)
    assert (prepared["metric"], prepared["threshold"]) == ("r2", 0.5)  # the regression defaults
    aws.invoke("train", envelope("DatasetPrepared", prepared))
    (tuning,) = aws.requests("CreateHyperParameterTuningJob")
    objective = tuning["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    assert objective == {"Type": "Minimize", "MetricName": "validation:rmse"}
    static = tuning["TrainingJobDefinition"]["StaticHyperParameters"]
    assert (static["objective"], static["eval_metric"]) == ("reg:squarederror", "rmse") and "num_class" not in static


def test_a_regression_metric_for_a_class_target_is_a_config_rejection(aws: AwsHarness) -> None:
    aws.put_config("kinds", "target: species\nmetric: rmse\nthreshold: 400\n")
    uploaded = aws.upload("incoming/kinds/penguins.csv", (EXAMPLE / "penguins.csv").read_bytes())
    event = aws.upload_event(uploaded)
    assert aws.invoke("prepare", event)["outcome"] == "rejected"
    (rejected,) = aws.details("DatasetRejected")
    assert rejected["stage"] == "config"
    assert rejected["reason"] == (
        "metric rmse is a regression metric, but the problem type is multiclass: use one of accuracy, balanced_accuracy, "
        "macro_precision, macro_recall, macro_f1, roc_auc, log_loss (or leave metric out for accuracy) "
        "(problem_type auto: the target 'species' is a multiclass target)"
    )
    assert aws.details("DatasetPrepared") == []
