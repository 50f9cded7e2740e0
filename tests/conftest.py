"""Shared fixtures: fake AWS credentials, paths, and the documented event samples."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "events"
EXAMPLES = REPO / "examples"


@pytest.fixture(autouse=True)
def _fake_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may reach real AWS: fake credentials, a fixed region. Nor a local stack the developer
    runs (`datadrop up` in ~/.datadrop): each test has an empty home of its own."""
    monkeypatch.setenv("DATADROP_HOME", str(tmp_path / "datadrop-home"))
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")


def sample_event(name: str, **detail_overrides: Any) -> dict[str, Any]:
    """A documented AWS event from events/, with some detail fields replaced."""
    event = json.loads((EVENTS / name).read_text())
    event = copy.deepcopy(event)
    event["detail"].update(detail_overrides)
    return event


def pytest_configure(config: pytest.Config) -> None:
    """Every boto3 request of every test is checked as AWS checks it (tests/strict_requests.py)."""
    from tests import strict_requests

    strict_requests.install()
