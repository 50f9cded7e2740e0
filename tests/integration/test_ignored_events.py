"""Every handler ignores what is not its business, quietly; and "not yet" is never cached.

A rule filter is the first line (template.yaml); the handlers check again, because rules get
edited, events get replayed by hand and SageMaker sends more statuses than the flow acts on. An
ignored event must change nothing at all: not the state table, not a bucket, not SageMaker, not
the bus, and not the idempotency table either, since an "ignored" that was cached would be
returned again when the same event later is the handler's business ("not yet": a Completed event
that arrives before its run is recorded).

AWS mode on moto: the real handlers and SageMaker adapter; the tests play SageMaker's part where
moto cannot (delivering its state-change events, writing batch transform output, UpdateEndpoint).
Event shapes come from the documented samples in events/, tests/fixtures/aws-events/ and, for
shapes datadrop never consumes, the SageMaker Developer Guide samples quoted below.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from datadrop import names
from datadrop.storage import split_s3_uri

from tests.conftest import sample_event
from tests.integration.conftest import AwsHarness, envelope

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "penguins"
FIXTURES = REPO / "tests" / "fixtures" / "aws-events"
DATASET = "penguins"
UPLOAD_KEY = f"incoming/{DATASET}/penguins.csv"
SPECIES_CONFIG = (EXAMPLE / "species.yaml").read_text()
CONFIG_ETAG = "0f343b0931126a20f133d67c2b018a3b"

# Shapes from the SageMaker Developer Guide ("Automating Amazon SageMaker with Amazon EventBridge")
# that datadrop does not consume; trimmed to the fields that identify them.
ENDPOINT_DEPLOYMENT_SCALING = {  # "SageMaker Endpoint Deployment State Change", the scaling sample
    "version": "0",
    "id": "0bd4a141-0a02-9d8a-f977-3924c3fb259c",
    "detail-type": "SageMaker Endpoint Deployment State Change",
    "source": "aws.sagemaker",
    "account": "123456789012",
    "time": "2021-10-25T01:52:12Z",
    "region": "us-west-2",
    "resources": ["arn:aws:sagemaker:us-west-2:651393343886:endpoint/sample-endpoint"],
    "detail": {
        "EndpointName": "sample-endpoint",
        "EndpointArn": "arn:aws:sagemaker:us-west-2:651393343886:endpoint/sample-endpoint",
        "EndpointConfigName": "sample-endpoint-config-1",
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "CurrentWeight": 1,
                "DesiredWeight": 1,
                "CurrentInstanceCount": 3,
                "DesiredInstanceCount": 6,
                "VariantStatus": [
                    {
                        "Status": "Updating",
                        "StatusMessage": "Scaling out desired instance count to 6.",
                        "StartTime": 1635195269181,
                    }
                ],
            }
        ],
        "EndpointStatus": "UPDATING",
        "CreationTime": 1635195148181,
        "LastModifiedTime": 1635195148181,
        "Tags": {},
    },
}
ENDPOINT_DEPLOYMENT_CANARY = copy.deepcopy(ENDPOINT_DEPLOYMENT_SCALING)  # the canary (blue/green baking) sample
ENDPOINT_DEPLOYMENT_CANARY["detail"]["PendingDeploymentSummary"] = {
    "EndpointConfigName": "sample-endpoint-config-2",
    "StartTime": 1635195269181,
    "ProductionVariants": [
        {
            "VariantName": "AllTraffic",
            "CurrentWeight": 1,
            "DesiredWeight": 1,
            "CurrentInstanceCount": 1,
            "DesiredInstanceCount": 3,
            "VariantStatus": [{"Status": "Baking", "StatusMessage": "Baking for 600 seconds", "StartTime": 1635195269181}],
        }
    ],
}
MODEL_PACKAGE_STATE_CHANGE = {  # the docs' sample repeats "source"; a JSON parser keeps the last, a list
    "version": "0",
    "id": "844e2571-85d4-695f-b930-0153b71dcb42",
    "detail-type": "SageMaker Model Package State Change",
    "account": "123456789012",
    "time": "2021-02-24T17:00:14Z",
    "region": "us-east-2",
    "resources": ["arn:aws:sagemaker:us-east-2:123456789012:model-package/versionedmp-p-idy6c3e1fiqj/2"],
    "source": ["aws.sagemaker"],
    "detail": {
        "ModelPackageGroupName": "versionedmp-p-idy6c3e1fiqj",
        "ModelPackageVersion": 2,
        "ModelPackageArn": "arn:aws:sagemaker:us-east-2:123456789012:model-package/versionedmp-p-idy6c3e1fiqj/2",
        "CreationTime": "2021-02-24T17:00:14Z",
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": "Rejected",
        "LastModifiedTime": "2021-02-24T17:00:14Z",
    },
}
TUNING_JOB_STATE_CHANGE = {  # "SageMaker HyperParameter Tuning Job State Change"
    "version": "0",
    "id": "844e2571-85d4-695f-b930-0153b71dcb42",
    "detail-type": "SageMaker HyperParameter Tuning Job State Change",
    "source": "aws.sagemaker",
    "account": "123456789012",
    "time": "2018-10-06T12:26:13Z",
    "region": "us-east-1",
    "resources": ["arn:aws:sagemaker:us-east-1:123456789012:tuningJob/x"],
    "detail": {
        "HyperParameterTuningJobName": "016bffd3-6d71-4d3a-9710-0a332b2759fc",
        "HyperParameterTuningJobArn": "arn:aws:sagemaker:us-east-1:123456789012:tuningJob/x",
        "HyperParameterTuningJobStatus": "status",
        "CreationTime": "1583831889050",
        "LastModifiedTime": "1583831889050",
        "TrainingJobStatusCounters": {"Completed": 1, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0},
        "Tags": {},
    },
}
TRAINING_IN_PROGRESS = {  # awslabs/mlspace's InProgress fixture: `Tags` as an object, epoch-ms integers, null FailureReason
    "version": "0",
    "id": "29f939a9-3cce-a8e1-24c7-3d8db2861245",
    "detail-type": "SageMaker Training Job State Change",
    "source": "aws.sagemaker",
    "account": "123456789000",
    "time": "2023-10-04T13:46:47Z",
    "region": "us-east-1",
    "resources": ["arn:aws:sagemaker:us-east-1:123456789000:training-job/UnitTestTrainingJob"],
    "detail": {
        "TrainingJobName": "UnitTestTrainingJob",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789000:training-job/UnitTestTrainingJob",
        "TrainingJobStatus": "InProgress",
        "FailureReason": None,
        "CreationTime": 1696427182554,
        "TrainingStartTime": 1696427186229,
        "TrainingEndTime": None,
        "LastModifiedTime": 1696427207435,
        "Tags": {"project": "UnitTestProject", "system": "MLSpace"},
    },
}


def invoke(aws: AwsHarness, function: str, event: dict[str, Any]) -> Any:
    """`aws.invoke` with AWS_LAMBDA_FUNCTION_NAME set as Lambda sets it (the template's logical id, as the local
    runtime uses): Powertools keys idempotency records by it, so one function's answer is never another's."""
    previous = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    os.environ["AWS_LAMBDA_FUNCTION_NAME"] = f"{function.capitalize()}Function"
    try:
        return aws.invoke(function, event)
    finally:
        if previous is None:
            os.environ.pop("AWS_LAMBDA_FUNCTION_NAME", None)
        else:
            os.environ["AWS_LAMBDA_FUNCTION_NAME"] = previous


def delivered_by_sagemaker(event: dict[str, Any]) -> dict[str, Any]:
    """Each event SageMaker sends has an id of its own (the samples all carry the same one)."""
    return {**event, "id": str(uuid.uuid4())}


def fixture_event(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def with_detail(event: dict[str, Any], **detail: Any) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["detail"].update(detail)
    return event


# ---------------------------------------------------------------------------------------------
# Driving the flow in AWS mode, playing SageMaker where moto cannot
# ---------------------------------------------------------------------------------------------
class Stage(IntEnum):
    """How far the flow got before the event under test arrives."""

    UPLOADED = 1  # config and data in the bucket; prepare did not run yet
    PREPARED = 2  # DatasetPrepared published; the version is PREPARED
    TRAINING = 3  # the training job was created; the run is TRAINING
    EVALUATING = 4  # the job Completed: model and batch transform created; the run is EVALUATING
    DEPLOYING = 5  # approved, endpoint config and endpoint created; the version is DEPLOYING


@dataclass
class Flow:
    aws: AwsHarness
    uploaded: dict[str, Any] = field(default_factory=dict)
    prepared: dict[str, Any] = field(default_factory=dict)
    approved: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.prepared["version"])

    @property
    def run(self) -> names.RunNames:
        """Run 1, attempt 1: its training job, model, transform job and endpoint config share this name."""
        return names.RunNames(self.aws.settings.name_prefix, DATASET, self.version, 1)

    @property
    def endpoint(self) -> str:
        return names.endpoint_name(self.aws.settings.name_prefix, DATASET)

    def upload(self, config: str = SPECIES_CONFIG) -> None:
        self.aws.put_config(DATASET, config)
        self.uploaded = self.aws.upload(UPLOAD_KEY, (EXAMPLE / "penguins.csv").read_bytes())

    def upload_event(self, **changes: Any) -> dict[str, Any]:
        """S3's "Object Created" for the upload (the documented sample, with the real bucket and object)."""
        event = sample_event("prepare_s3_object_created.json")
        event["detail"]["bucket"]["name"] = self.aws.settings.data_bucket_name
        event["detail"]["object"].update(self.uploaded)
        event.update(changes)
        return event

    def prepare(self) -> None:
        result = invoke(self.aws, "prepare", self.upload_event())
        assert result["outcome"] == "prepared", result
        self.prepared = next(d for d in reversed(self.aws.details("DatasetPrepared")) if d["version"] == result["version"])

    def train(self) -> None:
        result = invoke(self.aws, "train", envelope("DatasetPrepared", self.prepared))
        assert result["training_jobs"] == [self.run.training_job], result

    def training_completed(self) -> dict[str, Any]:
        return delivered_by_sagemaker(sample_event("evaluate_training_job_completed.json", TrainingJobName=self.run.training_job))

    def finish_training(self) -> None:
        assert invoke(self.aws, "evaluate", self.training_completed())["outcome"] == "evaluating"

    def finish_transform(self) -> None:
        """Play batch transform: every held-out row right; then its Completed event → ModelApproved."""
        labels = json.loads(self.aws.services.objects.read_uri(self.prepared["artifacts"]["test_labels"]))
        classes = self.prepared["classes"]
        lines = [json.dumps({"label": label, "probabilities": {c: float(c == label) for c in classes}}) for label in labels]
        (transform,) = [r for r in self.aws.requests("CreateTransformJob") if r["TransformJobName"] == self.run.transform_job]
        bucket, prefix = split_s3_uri(transform["TransformOutput"]["S3OutputPath"])
        self.aws.services.objects.write(bucket, prefix + "test.jsonl.out", ("\n".join(lines) + "\n").encode())
        done = sample_event("evaluate_transform_job_completed.json", TransformJobName=self.run.transform_job)
        done = delivered_by_sagemaker(done)
        assert invoke(self.aws, "evaluate", done)["outcome"] == "evaluated"
        # A model already serves: the gate re-scores it (the champion) on this version's test rows too.
        for champion in [
            r for r in self.aws.requests("CreateTransformJob") if f"-{self.version}-champion-" in r["TransformJobName"]
        ]:
            bucket, prefix = split_s3_uri(champion["TransformOutput"]["S3OutputPath"])
            self.aws.services.objects.write(bucket, prefix + "test.jsonl.out", ("\n".join(lines) + "\n").encode())
            done = sample_event("evaluate_transform_job_completed.json", TransformJobName=champion["TransformJobName"])
            assert invoke(self.aws, "evaluate", delivered_by_sagemaker(done))["outcome"] == "champion evaluated"
        self.approved = next(d for d in self.aws.details("ModelApproved") if d["version"] == self.version)

    def deploy(self) -> str:
        result = invoke(self.aws, "deploy", envelope("ModelApproved", self.approved))
        assert result["outcome"] in ("creating", "updating"), result
        return str(result["outcome"])

    def reach(self, stage: Stage) -> Flow:
        steps: list[tuple[Stage, Callable[[], object]]] = [
            (Stage.UPLOADED, self.upload),
            (Stage.PREPARED, self.prepare),
            (Stage.TRAINING, self.train),
            (Stage.EVALUATING, self.finish_training),
            (Stage.DEPLOYING, self.finish_transform),
            (Stage.DEPLOYING, self.deploy),
        ]
        for needed_for, step in steps:
            if stage >= needed_for:
                step()
        self.aws.collect()  # what the flow published so far is not the event under test's doing
        return self


def play_update_endpoint(aws: AwsHarness) -> None:
    """moto has no UpdateEndpoint: answer it as SageMaker would, once the request passed validation and was
    recorded. The endpoint then runs the new config (deleted and re-created through a client of its own, so
    the harness records only what datadrop asked)."""
    sagemaker = boto3.session.Session(region_name=aws.settings.region).client("sagemaker")

    def update(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        body = json.loads(params["body"])  # the request as serialised for SageMaker's JSON protocol
        sagemaker.delete_endpoint(EndpointName=body["EndpointName"])
        created = sagemaker.create_endpoint(EndpointName=body["EndpointName"], EndpointConfigName=body["EndpointConfigName"])
        return AWSResponse(params["url"], 200, {}, None), {"EndpointArn": created["EndpointArn"]}

    aws.services.sagemaker.meta.events.register("before-call.sagemaker.UpdateEndpoint", update)


# ---------------------------------------------------------------------------------------------
# "Nothing changed"
# ---------------------------------------------------------------------------------------------
READ_ONLY = ("Describe", "List", "Get", "Search")


@dataclass(frozen=True)
class World:
    """Everything an event could change, as a comparable value."""

    state: list[dict[str, Any]]
    idempotency: list[dict[str, Any]]
    objects: dict[str, list[tuple[str, str, str, bool]]]
    sagemaker_requests: int
    published: int


def _scan(table: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"ConsistentRead": True}
    while True:
        response = table.scan(**request)
        items.extend(response["Items"])
        if "LastEvaluatedKey" not in response:
            return sorted(items, key=lambda item: json.dumps({k: item[k] for k in sorted(item) if k in ("pk", "sk", "id")}))
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def world(aws: AwsHarness) -> World:
    settings, s3 = aws.settings, aws.services.objects.client
    dynamodb = aws.session.resource("dynamodb")
    objects: dict[str, list[tuple[str, str, str, bool]]] = {}
    for bucket in (settings.data_bucket_name, settings.artifact_bucket_name):
        listing = s3.list_object_versions(Bucket=bucket)
        entries = [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
        objects[bucket] = sorted((e["Key"], e["VersionId"], e.get("ETag", "delete marker"), e["IsLatest"]) for e in entries)
    return World(
        state=_scan(dynamodb.Table(settings.state_table_name)),
        idempotency=_scan(dynamodb.Table(settings.idempotency_table_name)),
        objects=objects,
        sagemaker_requests=len(aws.calls),
        published=len(aws.collect()),
    )


def assert_nothing_changed(aws: AwsHarness, before: World, may_ask: tuple[str, ...] = ()) -> None:
    after = world(aws)
    assert after.state == before.state, "the state table changed"
    assert after.idempotency == before.idempotency, "an ignored answer was cached (or a record left behind)"
    assert after.objects == before.objects, "an S3 object was written or removed"
    asked = [operation for operation, _ in aws.calls[before.sagemaker_requests :]]
    assert all(operation.startswith(READ_ONLY) and operation in may_ask for operation in asked), f"asked SageMaker: {asked}"
    assert after.published == before.published, f"published: {aws.published[before.published :]}"


# ---------------------------------------------------------------------------------------------
# The cases: per function, events outside its rule filters, at a stage where acting on them would do harm
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    function: str
    stage: Stage
    event: Callable[[Flow], dict[str, Any]]  # built after the flow reached `stage`, before the snapshot
    may_ask: tuple[str, ...] = ()  # read-only SageMaker calls the handler needs to tell it is not its business


def _upload_in_artifact_bucket(flow: Flow) -> dict[str, Any]:
    """The same bytes under the same key, but in another bucket: prepared, it would be a dataset version."""
    aws = flow.aws
    body = (EXAMPLE / "penguins.csv").read_bytes()
    response = aws.services.objects.client.put_object(Bucket=aws.settings.artifact_bucket_name, Key=UPLOAD_KEY, Body=body)
    event = flow.upload_event()
    event["detail"]["bucket"]["name"] = aws.settings.artifact_bucket_name
    event["detail"]["object"].update({"version-id": response["VersionId"], "etag": response["ETag"].strip('"')})
    return event


def _object_deleted(flow: Flow) -> dict[str, Any]:
    """S3's "Object Deleted" (a delete marker) for the upload: no etag, a deletion-type."""
    event = flow.upload_event(**{"detail-type": "Object Deleted"})
    event["detail"]["object"] = {"key": UPLOAD_KEY, "version-id": "UP.oJMbvu3RjDzJd0NUdGQj6Ubbk9Bm0", "sequencer": "617f0837b4"}
    event["detail"].update(reason="DeleteObject", **{"deletion-type": "Delete Marker Created"})
    return event


def _endpoint_event(flow: Flow, status: str, config_name: str | None = None) -> dict[str, Any]:
    """SageMaker's endpoint state change for the dataset's endpoint, running our run's config unless told otherwise."""
    return sample_event(
        "deploy_endpoint_in_service.json",
        EndpointName=flow.endpoint,
        EndpointStatus=status,
        EndpointConfigName=config_name or flow.run.endpoint_config,
    )


def _from_another_source(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "source": "com.example.replayer"}  # someone's PutEvents copying another service's event


CASES: dict[str, Case] = {
    # prepare: only S3's "Object Created" for a key under incoming/ in the data bucket is an upload.
    "prepare/object-tags-added": Case(
        "prepare", Stage.UPLOADED, lambda f: f.upload_event(**{"detail-type": "Object Tags Added"})
    ),
    "prepare/object-deleted": Case("prepare", Stage.UPLOADED, _object_deleted),
    "prepare/config-file-created": Case(
        "prepare",
        Stage.UPLOADED,
        lambda f: with_detail(f.upload_event(), object={"key": f"config/{DATASET}.yaml", "size": 40, "etag": CONFIG_ETAG}),
    ),
    "prepare/created-in-another-bucket": Case("prepare", Stage.UPLOADED, _upload_in_artifact_bucket),
    "prepare/s3-shaped-event-from-another-source": Case(
        "prepare", Stage.UPLOADED, lambda f: _from_another_source(f.upload_event())
    ),
    "prepare/sagemaker-event": Case("prepare", Stage.UPLOADED, lambda f: sample_event("evaluate_training_job_completed.json")),
    # train: only datadrop's own DatasetPrepared.
    "train/dataset-prepared-from-another-source": Case(
        "train", Stage.PREPARED, lambda f: _from_another_source(envelope("DatasetPrepared", f.prepared))
    ),
    "train/model-approved": Case(
        "train", Stage.PREPARED, lambda f: sample_event("deploy_model_approved.json", version=f.version)
    ),
    "train/sagemaker-training-job-completed": Case("train", Stage.PREPARED, lambda f: f.training_completed()),
    # evaluate: only final statuses of training and transform jobs that the state table maps to a run.
    "evaluate/our-training-job-in-progress": Case(
        "evaluate", Stage.TRAINING, lambda f: with_detail(TRAINING_IN_PROGRESS, TrainingJobName=f.run.training_job)
    ),
    "evaluate/our-training-job-stopping": Case(
        "evaluate",
        Stage.TRAINING,
        lambda f: with_detail(f.training_completed(), TrainingJobStatus="Stopping", SecondaryStatus="Stopping"),
    ),
    "evaluate/our-transform-job-in-progress": Case(
        "evaluate",
        Stage.EVALUATING,
        lambda f: sample_event(
            "evaluate_transform_job_completed.json", TransformJobName=f.run.transform_job, TransformJobStatus="InProgress"
        ),
    ),
    "evaluate/tuning-job-training-job-completed": Case(  # SageMaker names a tuning job's training jobs itself
        "evaluate", Stage.TRAINING, lambda f: fixture_event("sagemaker_training_job_state_change.docs.json")
    ),
    "evaluate/other-stack-training-job-completed": Case(  # stack "datadrop-x": our prefix is a prefix of theirs
        "evaluate",
        Stage.TRAINING,
        lambda f: with_detail(f.training_completed(), TrainingJobName=f"datadrop-x--{DATASET}-{f.version}-r01"),
    ),
    "evaluate/unmapped-name-of-our-shape-completed": Case(  # looks like ours, but no run was ever mapped to it
        "evaluate", Stage.TRAINING, lambda f: with_detail(f.training_completed(), TrainingJobName=f"{f.run.training_job}-a2")
    ),
    "evaluate/foreign-transform-job-completed": Case(
        "evaluate",
        Stage.EVALUATING,
        lambda f: sample_event("evaluate_transform_job_completed.json", TransformJobName="4b52bd8f-e034-4345-818d-884bdd7c9724"),
    ),
    "evaluate/endpoint-in-service": Case("evaluate", Stage.TRAINING, lambda f: _endpoint_event(f, "IN_SERVICE")),
    "evaluate/datadrop-event": Case("evaluate", Stage.TRAINING, lambda f: envelope("DatasetPrepared", f.prepared)),
    "evaluate/tuning-job-state-change": Case("evaluate", Stage.TRAINING, lambda f: copy.deepcopy(TUNING_JOB_STATE_CHANGE)),
    # evaluate: a package decision counts only for a package of ours whose version waits for a person.
    "evaluate/foreign-model-package-approved": Case(
        "evaluate",
        Stage.TRAINING,
        lambda f: with_detail({**MODEL_PACKAGE_STATE_CHANGE, "source": "aws.sagemaker"}, ModelApprovalStatus="Approved"),
    ),
    "evaluate/our-auto-approved-package-announced": Case(  # SageMaker announces our own CreateModelPackage
        "evaluate",
        Stage.DEPLOYING,
        lambda f: with_detail(
            {**MODEL_PACKAGE_STATE_CHANGE, "source": "aws.sagemaker"},
            ModelPackageGroupName=f"datadrop--{DATASET}",
            ModelPackageArn=f.approved["model_package_arn"],
            ModelApprovalStatus="Approved",
        ),
    ),
    "evaluate/our-package-pending-manual-approval": Case(
        "evaluate",
        Stage.DEPLOYING,
        lambda f: with_detail(
            {**MODEL_PACKAGE_STATE_CHANGE, "source": "aws.sagemaker"},
            ModelPackageGroupName=f"datadrop--{DATASET}",
            ModelPackageArn=f.approved["model_package_arn"],
            ModelApprovalStatus="PendingManualApproval",
        ),
    ),
    # deploy: only datadrop's ModelApproved, and final statuses of endpoints whose config is mapped to a run.
    "deploy/our-endpoint-creating": Case("deploy", Stage.DEPLOYING, lambda f: _endpoint_event(f, "CREATING")),
    "deploy/our-endpoint-updating": Case("deploy", Stage.DEPLOYING, lambda f: _endpoint_event(f, "Updating")),
    "deploy/our-endpoint-system-updating": Case("deploy", Stage.DEPLOYING, lambda f: _endpoint_event(f, "SYSTEM_UPDATING")),
    "deploy/our-endpoint-creating-without-config-name": Case(
        "deploy",
        Stage.DEPLOYING,
        lambda f: with_detail(
            fixture_event("sagemaker_endpoint_state_change.mlspace_derived.json"),
            EndpointName=f.endpoint,
            EndpointStatus="CREATING",
        ),
    ),
    "deploy/foreign-endpoint-in-service": Case(
        "deploy", Stage.DEPLOYING, lambda f: fixture_event("sagemaker_endpoint_state_change.docs.json")
    ),
    "deploy/foreign-endpoint-in-service-without-config-name": Case(
        "deploy",
        Stage.DEPLOYING,
        lambda f: fixture_event("sagemaker_endpoint_state_change.mlspace_derived.json"),
        may_ask=("DescribeEndpoint",),  # the event does not say which config: only SageMaker can
    ),
    "deploy/unmapped-config-of-our-shape-in-service": Case(  # a parsed name would say "ours, deployed"
        "deploy", Stage.DEPLOYING, lambda f: _endpoint_event(f, "IN_SERVICE", f"{f.run.endpoint_config}-a2")
    ),
    "deploy/endpoint-deployment-scaling": Case(
        "deploy",
        Stage.DEPLOYING,
        lambda f: with_detail(ENDPOINT_DEPLOYMENT_SCALING, EndpointName=f.endpoint, EndpointConfigName=f.run.endpoint_config),
    ),
    "deploy/endpoint-deployment-canary": Case(
        "deploy",
        Stage.DEPLOYING,
        lambda f: with_detail(ENDPOINT_DEPLOYMENT_CANARY, EndpointName=f.endpoint, EndpointConfigName=f.run.endpoint_config),
    ),
    "deploy/model-approved-from-another-source": Case(  # someone's own PutEvents: no datadrop event_id
        "deploy", Stage.DEPLOYING, lambda f: _from_another_source(envelope("ModelApproved", {**f.approved, "event_id": None}))
    ),
    "deploy/copy-of-our-model-approved-from-another-source": Case(  # e.g. replayed by a tool: datadrop's event_id kept
        "deploy", Stage.DEPLOYING, lambda f: _from_another_source(envelope("ModelApproved", f.approved))
    ),
    "deploy/dataset-prepared": Case("deploy", Stage.DEPLOYING, lambda f: envelope("DatasetPrepared", f.prepared)),
    "deploy/training-job-completed": Case("deploy", Stage.DEPLOYING, lambda f: f.training_completed()),
    "deploy/model-package-state-change": Case("deploy", Stage.DEPLOYING, lambda f: copy.deepcopy(MODEL_PACKAGE_STATE_CHANGE)),
}


@pytest.mark.parametrize("case", [pytest.param(case, id=name) for name, case in CASES.items()])
def test_an_event_that_is_not_the_handlers_business_is_ignored_and_changes_nothing(aws: AwsHarness, case: Case) -> None:
    flow = Flow(aws).reach(case.stage)
    event = case.event(flow)
    before = world(aws)
    statuses_before = _statuses(flow)

    result = invoke(aws, case.function, event)

    # prepare answers with its IntakeOutcome ("status"), or "outcome" when the event is no S3 upload at all.
    answer = result.get("outcome", result.get("status")) if case.function == "prepare" else result["outcome"]
    assert answer == "ignored", result
    assert_nothing_changed(aws, before, case.may_ask)
    assert _statuses(flow) == statuses_before  # e.g. a run TRAINING stays TRAINING (it used to be failed on InProgress)


def _statuses(flow: Flow) -> tuple[str | None, list[str]]:
    if not flow.prepared:
        return None, []
    state = flow.aws.services.state
    version = state.get_version(DATASET, flow.version)
    return (version.status.value if version else None), [run.status.value for run in state.list_runs(DATASET, flow.version)]


def test_every_function_with_event_rules_has_ignored_cases() -> None:
    functions = {path.parent.name for path in (REPO / "functions").glob("*/app.py")} - {"sweep"}  # sweep: a schedule
    assert {case.function for case in CASES.values()} == functions


# ---------------------------------------------------------------------------------------------
# "Not yet" is not cached
# ---------------------------------------------------------------------------------------------
def test_a_completed_event_that_came_before_its_run_was_recorded_is_processed_when_delivered_again(aws: AwsHarness) -> None:
    flow = Flow(aws).reach(Stage.PREPARED)
    completed = flow.training_completed()  # one EventBridge event: one `id`, delivered twice

    first = invoke(aws, "evaluate", completed)
    assert first == {"job": flow.run.training_job, "outcome": "ignored"}  # no run is mapped to the job yet
    assert aws.requests("CreateModel") == []

    flow.train()  # maps the job to its run, then creates it
    second = invoke(aws, "evaluate", completed)

    assert second == {"job": flow.run.training_job, "outcome": "evaluating"}  # not the cached "ignored"
    (transform,) = aws.requests("CreateTransformJob")
    assert transform["TransformJobName"] == flow.run.transform_job
    assert aws.services.state.get_run(DATASET, flow.version, 1).status == "EVALUATING"  # type: ignore[union-attr]
    assert invoke(aws, "evaluate", completed) == second  # a real answer is cached: the third delivery gets it back
    assert len(aws.requests("CreateTransformJob")) == 1


def test_in_service_events_without_a_config_name_finish_each_deployment_of_the_same_endpoint(aws: AwsHarness) -> None:
    play_update_endpoint(aws)
    in_service = fixture_event("sagemaker_endpoint_state_change.mlspace_derived.json")  # carries no EndpointConfigName
    assert "EndpointConfigName" not in in_service["detail"]

    first = Flow(aws).reach(Stage.DEPLOYING)
    in_service["detail"]["EndpointName"] = first.endpoint
    assert invoke(aws, "deploy", {**in_service, "id": "5cbdbd36-0c3e-4b0c-9a6b-1b2bd1c33e01"}) == {
        "endpoint": first.endpoint,
        "outcome": "deployed",
    }

    # A new config makes a new version of the same data; approved, it replaces the model behind the endpoint.
    second = Flow(aws)
    second.upload(SPECIES_CONFIG + "\nhyperparameters: {num_round: 20}\n")
    second.prepare()
    assert second.version != first.version
    second.train()
    second.finish_training()
    second.finish_transform()
    assert second.deploy() == "updating"
    (update,) = aws.requests("UpdateEndpoint")
    assert update == {
        "EndpointName": first.endpoint,
        "EndpointConfigName": second.run.endpoint_config,
        "DeploymentConfig": {  # blue/green, the config's default: all at once, no alarms
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                "TerminationWaitInSeconds": 0,
            }
        },
    }

    # SageMaker's event for the second deployment looks the same but for its id.
    result = invoke(aws, "deploy", {**in_service, "id": "9f3e6a0b-7d51-4c2e-8b8f-2a4d6c1e0f77"})

    assert result == {"endpoint": first.endpoint, "outcome": "deployed"}
    state = aws.services.state
    assert state.get_version(DATASET, first.version).status == "DEPLOYED"  # type: ignore[union-attr]
    assert state.get_version(DATASET, second.version).status == "DEPLOYED"  # type: ignore[union-attr]
    deployed = aws.details("ModelDeployed")
    assert [(d["version"], d["endpoint_config_name"]) for d in deployed] == [
        (first.version, first.run.endpoint_config),
        (second.version, second.run.endpoint_config),
    ]
