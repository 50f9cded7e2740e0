"""Fixtures shared by the end-to-end tests."""

from tests.e2e.test_cli import deployed_stack  # noqa: F401 - a deployed stack's outputs and tables, on moto
