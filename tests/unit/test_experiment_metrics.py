"""Metrics reach the run the way Run.log_metric sends them, and what SageMaker drops is noticed."""

from __future__ import annotations

from typing import Any

from datadrop.experiments import ExperimentTracker


class FakeMetricsClient:
    """The sagemaker-metrics port: records each request; drops the metrics named in `refuse`."""

    def __init__(self, refuse: set[str]) -> None:
        self.requests: list[dict[str, Any]] = []
        self.refuse = refuse

    def batch_put_metrics(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        errors = [
            {"Code": "METRIC_LIMIT_EXCEEDED", "MetricIndex": index, "Message": "too many"}
            for index, datum in enumerate(request["MetricData"])
            if datum["MetricName"] in self.refuse
        ]
        return {"Errors": errors}


def test_metrics_go_in_requests_of_ten_and_dropped_ones_are_returned() -> None:
    client = FakeMetricsClient(refuse={"m13"})
    tracker = ExperimentTracker(client=None, metrics_client=client, prefix="datadrop")
    handle = tracker.handle("penguins", "0123456789ab", 1)
    dropped = tracker.log_metrics(handle, {f"m{index:02d}": float(index) for index in range(25)})
    assert [len(request["MetricData"]) for request in client.requests] == [10, 10, 5]
    assert {request["TrialComponentName"] for request in client.requests} == {"datadrop--penguins-0123456789ab-r01"}
    assert dropped == ["m13"]


def test_no_metrics_no_request() -> None:
    client = FakeMetricsClient(refuse=set())
    tracker = ExperimentTracker(client=None, metrics_client=client, prefix="datadrop")
    assert tracker.log_metrics(tracker.handle("penguins", "0123456789ab", 1), {}) == []
    assert client.requests == []
