"""Metrics and the correlation id: what an operator watches and how they follow one dataset version.

Metrics are CloudWatch Embedded Metric Format lines (Powertools Metrics), flushed by each handler
at the end of its invocation: no API call, no extra latency. The namespace is
POWERTOOLS_METRICS_NAMESPACE (template.yaml: "datadrop"); the local runtime turns them off.

The correlation id of a dataset version is "<dataset>/<version>". Every event datadrop publishes
carries it (as `dataset` and `version`) and every log line a step writes once it knows the version
carries it as `correlation_id`, so one CloudWatch Logs Insights query follows an upload from S3
to its endpoint: `filter correlation_id = "penguins/825669ac66cd"`.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

NAMESPACE = "datadrop"
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE))


def correlate(dataset: str, version: str) -> None:
    """From here on, every log line of this invocation names the dataset version."""
    # The service's logger, looked up now: the handler made it (Powertools reuses a configured
    # logger), whereas a child made at import would be orphaned if the service name was set later.
    service = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", NAMESPACE))
    service.append_keys(correlation_id=f"{dataset}/{version}", dataset=dataset, version=version)


def count(name: str, value: int = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def duration(name: str, milliseconds: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=milliseconds)
