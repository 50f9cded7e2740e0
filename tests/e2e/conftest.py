"""Fixtures shared by the end-to-end tests."""

from collections.abc import Iterator

import pytest
from datadrop.local.runtime import LocalStack

from tests import published_schemas
from tests.e2e.test_cli import deployed_stack  # noqa: F401 - a deployed stack's outputs and tables, on moto


@pytest.fixture(autouse=True, scope="session")
def _every_published_event_matches_its_schema() -> Iterator[None]:
    """Each event a local stack observes on its bus is checked against schemas/ as it arrives."""
    observe = LocalStack._observe

    def checked(stack: LocalStack) -> None:
        seen = len(stack.published)
        observe(stack)
        for event in stack.published[seen:]:
            published_schemas.check(event)

    LocalStack._observe = checked  # type: ignore[method-assign]
    yield
    LocalStack._observe = observe  # type: ignore[method-assign]
