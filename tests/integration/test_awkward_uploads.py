"""Awkward uploads through the prepare handler (AWS mode on moto): each file of the corpus
(tests/awkward_files.py) ends in DatasetPrepared, with its quality report stored next to the
splits, or in DatasetRejected with a reason that says what to change; the uploaded object is never
changed, and a rejected upload leaves nothing behind in the artifact bucket.

S3 writes the object's key URL-encoded into its events ("my data+1.csv" as "my+data%2B1.csv", as
Powertools' S3 event class knows); the events here are encoded that way.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

import pytest
from datadrop.quality import QualityReport

from tests.awkward_files import CORPUS, Case, plain
from tests.conftest import sample_event
from tests.integration.conftest import AwsHarness

DATASET = "awkward"


def upload_event(aws: AwsHarness, uploaded: dict[str, Any]) -> dict[str, Any]:
    """S3's "Object Created" for an upload, its key URL-encoded as S3 writes it."""
    event = sample_event("prepare_s3_object_created.json")
    event["detail"]["bucket"]["name"] = aws.settings.data_bucket_name
    event["detail"]["object"].update(uploaded, key=quote_plus(uploaded["key"], safe="/"))
    return event


def artifact_keys(aws: AwsHarness) -> list[str]:
    listed = aws.services.objects.client.list_objects_v2(Bucket=aws.settings.artifact_bucket_name)
    return [item["Key"] for item in listed.get("Contents", [])]


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_each_awkward_upload_is_prepared_or_rejected_and_the_upload_is_untouched(aws: AwsHarness, case: Case) -> None:
    data = case.make()
    key = f"incoming/{DATASET}/{case.name}.csv"  # whatever the format: the name proves nothing
    aws.put_config(DATASET, f"target: {case.target}\n")
    uploaded = aws.upload(key, data)

    result = aws.invoke("prepare", upload_event(aws, uploaded))

    stored = aws.services.objects.client.get_object(Bucket=aws.settings.data_bucket_name, Key=key)
    assert stored["Body"].read() == data and stored["ETag"].strip('"') == uploaded["etag"]
    if not case.prepares:
        assert result["outcome"] == "rejected", result
        (rejected,) = aws.details("DatasetRejected")
        assert rejected["source"]["key"] == key and rejected["stage"] == "data"
        for word in case.reason_words:
            assert word in rejected["reason"], f"{word!r} not in {rejected['reason']!r}"
        assert artifact_keys(aws) == []  # nothing half-written
        return
    assert result["outcome"] == "prepared", result
    (prepared,) = aws.details("DatasetPrepared")
    assert prepared["source"]["key"] == key
    report = QualityReport.model_validate_json(aws.services.objects.read_uri(prepared["artifacts"]["profile"]))
    assert (report.dataset, report.version) == (DATASET, prepared["version"])
    assert report.detected.bytes == len(data)
    assert prepared["quality"] == report.summary().model_dump(mode="json")
    assert prepared["rows"] == {name: split.rows for name, split in report.splits.items()}
    assert len(json.dumps(prepared)) < 16_000  # far under EventBridge's 256 KB, even for the widest report


def test_a_key_with_spaces_plus_signs_and_accents_is_read_from_the_key_s3_meant(aws: AwsHarness) -> None:
    key = "incoming/penguins/my data+v2 (copy) é.csv"
    look_alike = "incoming/penguins/my data v2 (copy) é.csv"  # what decoding "+" as a space would read
    aws.put_config("penguins", "target: label\n")
    aws.upload(look_alike, b"not,the,file\n")
    uploaded = aws.upload(key, plain())
    event = upload_event(aws, uploaded)
    assert event["detail"]["object"]["key"] == "incoming/penguins/my+data%2Bv2+%28copy%29+%C3%A9.csv"

    result = aws.invoke("prepare", event)

    assert result["outcome"] == "prepared", result
    (prepared,) = aws.details("DatasetPrepared")
    assert prepared["source"]["key"] == key
    assert prepared["quality"]["rows_read"] == 60
