"""A random search of 120 runs in local mode, on small data: every run trains and is scored, every
event stays under EventBridge's 256 KB, and the leaderboard in S3 holds all 120.

The slowest test of the suite by design (each run is a real training job, model, batch transform and
score on this machine, with every API call going through moto): about a minute on a 2-core VM.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from datadrop.local.runtime import LocalStack
from moto import mock_aws

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "penguins"
PUT_EVENTS_ENTRY_LIMIT = 256 * 1024

pytestmark = pytest.mark.e2e

RANDOM_120 = """target: sex
threshold: 0.5
hyperparameters:
  num_round: 3
  max_depth: {min: 1, max: 6, type: int}
  eta: {min: 0.05, max: 1.0, scale: log}
  min_child_weight: {min: 1, max: 10}
search: {strategy: random, max_runs: 120, max_parallel: 30, seed: 5}
"""


def put_events_entry_size(event: dict) -> int:
    """How PutEvents measures an entry: Time (14 bytes), Source, DetailType, Detail and Resources, UTF-8."""
    parts = [event["source"], event["detail-type"], json.dumps(event["detail"]), *event.get("resources", [])]
    return 14 + sum(len(part.encode()) for part in parts)


@pytest.fixture(scope="module")
def searched() -> Iterator[LocalStack]:
    with mock_aws(), LocalStack(template_path=REPO / "template.yaml") as stack:
        stack.put_config("penguins-sex", RANDOM_120)
        # small data: the first 160 rows
        rows = (EXAMPLE / "penguins.csv").read_text().splitlines(keepends=True)[:161]
        small = stack.workdir / "penguins.csv"
        small.write_text("".join(rows))
        stack.upload(small, "penguins-sex")
        stack.drain(max_steps=5000)
        yield stack


def test_a_random_search_of_120_runs_completes_with_one_decision(searched: LocalStack) -> None:
    assert searched.dead_letters == []
    (started,) = searched.events_of("TrainingStarted")
    assert len(started["runs"]) == 120
    assert len({run["run_index"] for run in started["runs"]}) == 120  # indexes above 99 included
    assert len(searched.events_of("RunEvaluated")) == 120
    decisions = searched.events_of("ModelApproved") + searched.events_of("ModelRejected")
    assert len(decisions) == 1 and decisions[0]["run_count"] == 120 and decisions[0]["failed_runs"] == 0
    assert len(searched.compute.jobs("training")) == 120


def test_every_event_stays_under_the_put_events_limit(searched: LocalStack) -> None:
    sizes = {event["detail-type"]: 0 for event in searched.published}
    for event in searched.published:
        sizes[event["detail-type"]] = max(sizes[event["detail-type"]], put_events_entry_size(event))
    assert sizes["TrainingStarted"] > 20_000  # the biggest: 120 planned runs with their hyperparameters
    assert all(size < PUT_EVENTS_ENTRY_LIMIT for size in sizes.values()), sizes


def test_the_leaderboard_in_s3_holds_all_120_runs_best_first(searched: LocalStack) -> None:
    decision = (searched.events_of("ModelApproved") + searched.events_of("ModelRejected"))[0]
    leaderboard = json.loads(searched.services.objects.read_uri(decision["leaderboard"]))
    assert len(leaderboard["runs"]) == 120
    assert sorted(run["run_index"] for run in leaderboard["runs"]) == list(range(1, 121))
    accuracies = [run["metrics"]["accuracy"] for run in leaderboard["runs"]]
    assert accuracies == sorted(accuracies, reverse=True)
    assert leaderboard["best_run"] == decision["best_run"]["run_index"] == leaderboard["runs"][0]["run_index"]
