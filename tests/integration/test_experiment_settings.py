"""The dataset config names and tags the experiment as Experiment.create(...) and Run(...) would."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import AwsHarness, envelope

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "penguins"


def test_display_name_description_and_tags_come_from_the_config(aws: AwsHarness) -> None:
    config = (EXAMPLE / "species.yaml").read_text() + (
        "experiment:\n"
        "  display_name: Palmer-penguins\n"
        "  description: Species from bill and flipper measurements\n"
        "  tags: {team: ml-platform, cost-centre: '42'}\n"
    )
    aws.put_config("penguins", config)
    uploaded = aws.upload("incoming/penguins/penguins.csv", (EXAMPLE / "penguins.csv").read_bytes())
    event = aws.upload_event(uploaded)
    assert aws.invoke("prepare", event)["outcome"] == "prepared"
    (prepared,) = aws.details("DatasetPrepared")
    aws.invoke("train", envelope("DatasetPrepared", prepared))

    (experiment,) = aws.requests("CreateExperiment")  # the strict validator checked it as SageMaker would
    assert experiment["DisplayName"] == "Palmer-penguins"
    assert experiment["Description"] == "Species from bill and flipper measurements"
    for request in (experiment, *aws.requests("CreateTrial"), *aws.requests("CreateTrialComponent")):
        tags = {tag["Key"]: tag["Value"] for tag in request["Tags"]}
        assert tags["team"] == "ml-platform" and tags["cost-centre"] == "42" and tags["datadrop:dataset"] == "penguins"
    # (moto's DescribeExperiment returns no DisplayName and drops tags, so the requests are the evidence)
