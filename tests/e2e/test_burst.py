"""A burst of 50 uploads against a SageMaker quota: everything ends decided, nothing in a dead-letter queue.

Fifty different versions of the example are uploaded at once into one local stack whose SageMaker
allows only a few training and transform jobs at a time, as an account quota does: beyond it,
CreateTrainingJob and CreateTransformJob answer ResourceLimitExceeded. The runs that could not
start wait (PENDING), and the sweeper starts them as jobs finish. The threshold is above any
accuracy the shuffled labels allow, so each version ends with its decision (ModelRejected) rather than 50 deployments.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from datadrop.local.runtime import LocalStack
from moto import mock_aws

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "penguins"
UPLOADS = 50
QUOTA = 5  # jobs of one kind that may be in progress at once

pytestmark = pytest.mark.e2e


def _versions() -> list[bytes]:
    """Fifty different samples of the example (so fifty different dataset versions), with their
    species shuffled: nothing can be learnt, so no version reaches the threshold."""
    header, *rows = (EXAMPLE / "penguins.csv").read_text().splitlines()
    samples = []
    for seed in range(UPLOADS):
        rng = random.Random(seed)
        chosen = [row.split(",", 1) for row in rng.sample(rows, 150)]
        labels = [label for label, _ in chosen]
        rng.shuffle(labels)
        lines = [f"{label},{rest}" for label, (_, rest) in zip(labels, chosen)]
        samples.append(("\n".join([header, *lines]) + "\n").encode())
    return samples


@pytest.fixture
def quota_limited_stack() -> Iterator[tuple[LocalStack, Counter[str]]]:
    refusals: Counter[str] = Counter()
    with mock_aws(), LocalStack(template_path=REPO / "template.yaml") as stack:
        validated_call = BaseClient._make_api_call

        def with_quota(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            kind = {"CreateTrainingJob": "training", "CreateTransformJob": "transform"}.get(operation)
            if kind and os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
                in_progress = sum(1 for pending_kind, _ in stack.compute._pending if pending_kind == kind)
                if in_progress >= QUOTA:
                    refusals[operation] += 1
                    message = f"The account-level service limit for {kind} jobs is {QUOTA}"
                    raise ClientError({"Error": {"Code": "ResourceLimitExceeded", "Message": message}}, operation)
            return validated_call(client, operation, params)

        BaseClient._make_api_call = with_quota  # type: ignore[method-assign]
        try:
            yield stack, refusals
        finally:
            BaseClient._make_api_call = validated_call  # type: ignore[method-assign]


def test_fifty_uploads_at_once_all_end_decided_under_a_quota(quota_limited_stack: tuple[LocalStack, Counter[str]]) -> None:
    stack, refusals = quota_limited_stack
    stack.put_config("burst", (EXAMPLE / "species.yaml").read_text().replace("threshold: 0.9", "threshold: 0.95"))
    for index, body in enumerate(_versions()):
        stack.s3.put_object(Bucket=stack.settings.data_bucket_name, Key=f"incoming/burst/part-{index:02d}.csv", Body=body)
    stack.drain(max_steps=20_000, max_idle_sweeps=500)

    assert stack.dead_letters == [], [delivery.error for delivery in stack.dead_letters]
    assert refusals["CreateTrainingJob"] > 0, "the quota never bit: the test would prove nothing"
    versions = stack.services.state.list_versions("burst")
    assert len(versions) == UPLOADS
    assert Counter(version.status for version in versions) == {"REJECTED": UPLOADS}
    decided = stack.events_of("ModelRejected")
    assert sorted(event["version"] for event in decided) == sorted(version.version for version in versions)
    assert all(event["value"] is not None and "< threshold 0.9500" in event["reason"] for event in decided)
    # Every run trained exactly once, whatever the refusals.
    assert len(stack.compute.jobs("training")) == UPLOADS
    assert len(stack.sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]) == UPLOADS
