"""A file with labels and categories written inconsistently, from upload to the local endpoint: the classes
the endpoint answers with are the merged ones, and a raw row's odd spacing or case encodes like the usual one."""

from __future__ import annotations

import csv
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
DATA = REPO / "examples" / "penguins" / "penguins.csv"

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with mock_aws(), LocalStack(template_path=REPO / "template.yaml") as local:
        yield local


def _messy_penguins() -> tuple[bytes, dict[str, set[str]]]:
    """The penguins with a third of the species and islands re-spelt (case, spaces); the usual spelling stays
    the most frequent. Returns the CSV and, per class, the spellings written (stripped)."""
    rng = random.Random(5)
    rows = list(csv.reader(DATA.open(newline="")))
    spellings: dict[str, set[str]] = {}
    for row in rows[1:]:
        species, island = row[0], row[1]
        if rng.random() < 0.33:
            row[0] = rng.choice([species.lower(), species.upper(), f" {species.lower()}  "])
        if rng.random() < 0.5:
            row[1] = rng.choice([island.lower(), island.upper(), f"  {island} "])
        spellings.setdefault(species, set()).add(row[0].strip())  # every value is read stripped
    body = io.StringIO()
    csv.writer(body, lineterminator="\n").writerows(rows)
    return body.getvalue().encode(), spellings


def _predict(url: str, instances: list[dict[str, str]]) -> list[dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps({"instances": instances}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["predictions"]


def test_merged_labels_are_what_the_endpoint_returns_and_raw_spellings_encode_alike(stack: LocalStack) -> None:
    data, spellings = _messy_penguins()
    assert all(len(written) > 1 for written in spellings.values())
    stack.put_config("messy", "target: species\nthreshold: 0.5\nhyperparameters: {num_round: 30, max_depth: 3}\n")
    stack.s3.put_object(Bucket=stack.settings.data_bucket_name, Key="incoming/messy/data.csv", Body=data)
    stack.drain()
    assert stack.dead_letters == [], [d.error for d in stack.dead_letters]
    (prepared,) = stack.events_of("DatasetPrepared")
    assert prepared["classes"] == sorted(spellings) == ["Adelie", "Chinstrap", "Gentoo"]
    profile = json.loads(stack.services.objects.read_uri(prepared["artifacts"]["profile"]))
    assert {kept: set(others) | {kept} for kept, others in profile["target"]["merged"].items()} == spellings
    truth = json.loads(stack.services.objects.read_uri(prepared["artifacts"]["test_labels"]))
    assert set(truth) <= set(spellings)

    (deployed,) = stack.events_of("ModelDeployed")
    usual = {
        "island": "Dream",
        "bill_length_mm": "49.5",
        "bill_depth_mm": "19.0",
        "flipper_length_mm": "200",
        "body_mass_g": "3800",
        "sex": "male",
        "year": "2008",
    }
    odd = [
        usual | {"island": island, "sex": sex} for island, sex in ((" Dream ", "MALE"), ("dream", " Male "), ("DREAM", "male"))
    ]
    answers = _predict(deployed["invocation_url"], [usual, *odd])
    assert {answer["label"] for answer in answers} <= set(spellings)
    assert set(answers[0]["probabilities"]) == set(spellings)
    for answer in answers[1:]:
        assert answer == answers[0]
    # and a value the training rows never had still answers, as the unseen level
    unseen = _predict(deployed["invocation_url"], [usual | {"island": "Atlantis"}])
    assert unseen[0]["label"] in spellings
