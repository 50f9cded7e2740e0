"""A customer file with row numbers, a signup date and a yes/no column, from upload to the local endpoint:
the row numbers are dropped, the date is expanded, the yes/no column is a boolean, and the endpoint answers
raw rows holding a date and a truth value however they are written."""

from __future__ import annotations

import csv
import datetime
import io
import json
import random
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from datadrop.local.runtime import LocalStack
from moto import mock_aws

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with mock_aws(), LocalStack(template_path=REPO / "template.yaml") as local:
        yield local


def _customers(n: int = 400) -> bytes:
    """Churn is decided by the newsletter answer and the signup year, so both must reach the model."""
    rng = random.Random(12)
    rows = [["id", "signup_date", "newsletter", "plan", "churned"]]
    for i in range(n):
        signup = datetime.datetime(2018, 1, 1) + datetime.timedelta(minutes=rng.randint(0, 6 * 365 * 24 * 60))
        subscribed = rng.random() < 0.5
        churned = not subscribed and signup.year < 2021
        newsletter = rng.choice(["yes", "Yes", "y", "TRUE"] if subscribed else ["no", "No", "n", "false"])
        written = signup.strftime(rng.choice(["%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"]))
        rows.append([str(i + 1), written, newsletter, rng.choice(["basic", "pro"]), "yes" if churned else "no"])
    body = io.StringIO()
    csv.writer(body, lineterminator="\n").writerows(rows)
    return body.getvalue().encode()


def _predict(url: str, instances: list[dict[str, str]]) -> list[dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps({"instances": instances}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["predictions"]


def test_dates_and_booleans_train_and_the_endpoint_reads_raw_rows(stack: LocalStack) -> None:
    stack.put_config("churn", "target: churned\nthreshold: 0.8\nhyperparameters: {num_round: 30, max_depth: 3}\n")
    stack.s3.put_object(Bucket=stack.settings.data_bucket_name, Key="incoming/churn/data.csv", Body=_customers())
    stack.drain()
    assert stack.dead_letters == [], [d.error for d in stack.dead_letters]
    (prepared,) = stack.events_of("DatasetPrepared")
    assert prepared["quality"]["dropped_columns"] == ["id"]
    profile = json.loads(stack.services.objects.read_uri(prepared["artifacts"]["profile"]))
    roles = {column["name"]: column["role"] for column in profile["columns"]}
    assert roles == {
        "id": "dropped",
        "signup_date": "datetime",
        "newsletter": "boolean",
        "plan": "categorical",
        "churned": "target",
    }
    assert "consecutive" in next(column["detail"] for column in profile["columns"] if column["name"] == "id")

    (deployed,) = stack.events_of("ModelDeployed")
    url = deployed["invocation_url"]
    early_no = {"id": "5", "signup_date": "2019-06-01 10:00:00", "newsletter": "no", "plan": "basic"}
    late_yes = {"id": "6", "signup_date": "2023-06-01", "newsletter": "yes", "plan": "basic"}
    answers = _predict(url, [early_no, late_yes])
    assert [answer["label"] for answer in answers] == ["yes", "no"]
    # the same rows written otherwise (other spellings, a zone, a slash date) answer the same
    respelt = [
        early_no | {"signup_date": "2019-06-01T10:00:00Z", "newsletter": " FALSE "},
        late_yes | {"signup_date": "2023/06/01", "newsletter": "Y"},
    ]
    assert _predict(url, respelt) == answers
    # unreadable values take the training fills / the missing level, and still answer
    unreadable = _predict(url, [early_no | {"signup_date": "someday", "newsletter": "maybe"}])
    assert unreadable[0]["label"] in ("yes", "no")
