"""The SageMaker SDK (v3) reads datadrop's experiment records from a moto_server, as it would from AWS.

datadrop writes the experiment, run groups and runs with its own code (ExperimentTracker, as the
train step does) through boto3 pointed at a moto_server on 127.0.0.1; the SDK then reads them back
with its own calls over HTTP. One moto gap is named where it bites: `load_run` first calls
CreateTrialComponent, which moto answers by overwriting the run (SageMaker answers
ResourceInUse), so the parameters are read with DescribeTrialComponent before load_run; and
ListTrials ignores its sort and time filters.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import boto3
import pytest
from datadrop.experiments import ExperimentTracker

VERSIONS = ("0123456789ab", "ba9876543210")


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # every boto3 client in this test, the SDK's included
    try:
        yield endpoint
    finally:
        server.stop()


def test_the_sdk_loads_datadrops_experiment_run_groups_and_runs(moto_server: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session_helper = pytest.importorskip("sagemaker.core.helper.session_helper")
        from sagemaker.core.experiments.experiment import Experiment
        from sagemaker.core.experiments.run import load_run

    session = boto3.session.Session(region_name="us-east-1")
    sagemaker = session.client("sagemaker")
    tracker = ExperimentTracker(sagemaker, session.client("sagemaker-metrics"), "datadrop")
    hyperparameters = {"eta": "0.3", "max_depth": "4", "objective": "binary:logistic"}
    for version in VERSIONS:
        for run_index in (1, 2):
            handle = tracker.handle("penguins", version, run_index)
            tracker.start_run(handle, "penguins", version, parameters=hyperparameters, inputs={"train": "s3://b/train/"})

    sdk_session = session_helper.Session(boto_session=session)
    experiment = Experiment.load(experiment_name="datadrop--penguins", sagemaker_session=sdk_session)
    assert experiment.experiment_name == "datadrop--penguins"
    groups = [trial.trial_name for trial in experiment.list_trials(sort_by="Name", sort_order="Descending")]
    # moto's ListTrials ignores SortBy, SortOrder and the time filters (the strict validator checked
    # the SDK's request): it answers in creation order, so only membership is compared here.
    assert sorted(groups) == [f"datadrop--penguins-{version}" for version in sorted(VERSIONS)]

    run_name = f"{VERSIONS[0]}-r02"
    component = sagemaker.describe_trial_component(TrialComponentName=f"datadrop--penguins-{run_name}")
    # Numbers as numbers, as Run.log_parameters writes them; strings as strings.
    assert component["Parameters"] == {
        "eta": {"NumberValue": 0.3},
        "max_depth": {"NumberValue": 4.0},
        "objective": {"StringValue": "binary:logistic"},
    }
    with load_run(run_name=run_name, experiment_name="datadrop--penguins", sagemaker_session=sdk_session) as run:
        assert run.run_name == run_name
        # The run is datadrop's trial component; the SDK also files every run it loads under its own
        # "Default-Run-Group-<experiment>" trial, which it names in experiment_config.
        assert run.experiment_config["ExperimentName"] == "datadrop--penguins"
        assert run.experiment_config["RunName"] == f"datadrop--penguins-{run_name}"
