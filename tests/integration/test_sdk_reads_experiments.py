"""The SageMaker Python SDK (v3) finds datadrop's experiment, run group and run.

moto overwrites a trial component that is created again, and the SDK's load_run creates before it
loads, so this test checks names and membership, not the parameters load_run reads back.
"""

from __future__ import annotations

import warnings

import pytest

from tests.integration.conftest import AwsHarness, envelope
from tests.integration.test_aws_flow import _prepare


def test_sdk_loads_experiment_run_group_and_run(aws: AwsHarness) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session_helper = pytest.importorskip("sagemaker.core.helper.session_helper")
        from sagemaker.core.experiments.experiment import Experiment
        from sagemaker.core.experiments.run import load_run

    prepared = _prepare(aws)
    aws.invoke("train", envelope("DatasetPrepared", prepared))
    version = prepared["version"]
    session = session_helper.Session(boto_session=aws.session)

    experiment = Experiment.load(experiment_name="datadrop--penguins", sagemaker_session=session)
    assert [trial.trial_name for trial in experiment.list_trials()] == [f"datadrop--penguins-{version}"]
    with load_run(run_name=f"{version}-r01", experiment_name="datadrop--penguins", sagemaker_session=session) as run:
        assert run.run_name == f"{version}-r01"
        assert run.experiment_config["RunName"] == f"datadrop--penguins-{version}-r01"
    (training,) = aws.requests("CreateTrainingJob")
    assert training["ExperimentConfig"]["RunName"] == run.experiment_config["RunName"]
