"""Fixtures shared by the end-to-end tests."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from datadrop.local.runtime import LocalStack

from tests import published_schemas
from tests.e2e.test_cli import deployed_stack  # noqa: F401 - a deployed stack's outputs and tables, on moto


@pytest.fixture(autouse=True, scope="session")
def _every_published_event_matches_its_schema() -> Iterator[None]:
    """Each event a local stack observes on its bus is checked against schemas/ as it arrives (the
    service's worker, another process, is checked by tests/e2e/test_local_service.py)."""
    record = LocalStack._record

    def checked(stack: LocalStack, message: Any) -> None:
        record(stack, message)
        published_schemas.check(json.loads(message["Body"]))

    LocalStack._record = checked  # type: ignore[method-assign]
    yield
    LocalStack._record = record  # type: ignore[method-assign]
