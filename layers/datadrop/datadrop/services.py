"""Wiring: the adapters each step uses, built once per Lambda container from the environment.

The local runtime (and tests) install their own `Services` with `use_services`, e.g. with the
local compute adapter in place of SageMaker; nothing else differs between modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from datadrop.compute import SageMakerCompute
from datadrop.events import EventPublisher
from datadrop.experiments import ExperimentTracker
from datadrop.settings import Settings
from datadrop.state import StateStore
from datadrop.storage import ObjectStore

# Standard retry mode backs off on throttling (ThrottlingException, 429/503) for every call. One
# call's whole retry budget fits inside the shortest function timeout (a test checks it against
# template.yaml): beyond it the step gives up with CapacityError and the sweeper retries later,
# instead of the invocation timing out half-way through a step.
MAX_ATTEMPTS = 4
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 15
_BOTO_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
    connect_timeout=CONNECT_TIMEOUT_SECONDS,
    read_timeout=READ_TIMEOUT_SECONDS,
)


def worst_case_call_seconds() -> float:
    """The longest one AWS call can take with its retries: every attempt times out, and the
    standard mode's jittered backoff (at most 2**n seconds, capped at 20) waits its longest."""
    backoff = sum(min(20, 2**attempt) for attempt in range(1, MAX_ATTEMPTS))
    return MAX_ATTEMPTS * (CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS) + backoff


@dataclass
class Services:
    settings: Settings
    objects: ObjectStore
    state: StateStore
    events: EventPublisher
    compute: SageMakerCompute
    experiments: ExperimentTracker
    sagemaker: Any  # boto3 SageMaker client for registry calls

    @classmethod
    def from_settings(cls, settings: Settings, session: boto3.session.Session | None = None) -> Services:
        session = session or boto3.session.Session(region_name=settings.region)
        sagemaker = session.client("sagemaker", config=_BOTO_CONFIG)
        publisher = EventPublisher(session.client("events", config=_BOTO_CONFIG), settings.event_bus_name)
        return cls(
            settings=settings,
            objects=ObjectStore(session.client("s3", config=_BOTO_CONFIG)),
            state=StateStore(session.resource("dynamodb", config=_BOTO_CONFIG).Table(settings.state_table_name), publisher),
            events=publisher,
            compute=SageMakerCompute(sagemaker, settings.region),
            experiments=ExperimentTracker(
                sagemaker, session.client("sagemaker-metrics", config=_BOTO_CONFIG), settings.name_prefix
            ),
            sagemaker=sagemaker,
        )


_current: Services | None = None


def get_services() -> Services:
    global _current
    if _current is None:
        _current = Services.from_settings(Settings.from_environment())
    return _current


def use_services(services: Services | None) -> None:
    """Install (or, with None, forget) the services the handlers use."""
    global _current
    _current = services
