"""What every handler shares: Powertools idempotency on the DynamoDB table from template.yaml, and
the pydantic models it builds at import.

An answer that means "not my business (yet)" is never cached: a Completed event that arrives before
its run is recorded, or an event replayed by hand, must be looked at afresh when it comes again.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent
from pydantic import BaseModel

# A day: SageMaker and S3 may re-deliver events well after the first delivery.
IDEMPOTENCY_SECONDS = 24 * 3600
# The key of every step that consumes EventBridge events: datadrop's own events carry a stable
# event_id (a re-publication keeps it); AWS's events are told apart by their EventBridge id. The
# source is part of it, so a copy of a datadrop event sent by someone else is never "the same".
EVENT_KEY = '[source, "detail-type", detail.event_id || id]'
IGNORED = "ignored"

Handler = Callable[[dict[str, Any], Any], Any]


def prebuilt(*models: type[BaseModel]) -> tuple[type[BaseModel], ...]:
    """Build these models' validators and serializers now, at import, and return them.

    datadrop's models defer their builds (defer_build), so a step never builds the dozens it does
    not use; a handler lists here every model its invocations validate, construct or dump, so that
    work stays in Lambda's Init phase, where the import-time bench (bench/layers.py) measures it,
    instead of slipping into the first request. The integration tests' harness fails an invocation
    that builds a model its handler did not list.
    """
    for model in models:
        model.model_rebuild()  # a no-op for a model already built
    return models


def ignored(reason: str) -> dict[str, Any]:
    """The answer to an event that is not the handler's business: nothing changed."""
    return {"outcome": IGNORED, "reason": reason}


class _NotCached(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("reason", IGNORED))
        self.result = result


def _is_ignored(result: Any) -> bool:
    return isinstance(result, dict) and result.get("outcome") == IGNORED


def idempotent_on(event_key_jmespath: str, accepts: dict[str, set[str]]) -> Callable[[Handler], Handler]:
    """Run the handler once per distinct key; a duplicate gets the first result back.

    `accepts` maps each event source the handler takes to its detail-types; anything else is
    ignored before the key is even computed (an event of another shape may have no key at all).
    The persistence layer (and its DynamoDB client) is built on the first invocation, not at
    import: importing a handler then needs no environment and stays cheap (bench/import_time.py).
    """
    config = IdempotencyConfig(
        event_key_jmespath=event_key_jmespath,
        expires_after_seconds=IDEMPOTENCY_SECONDS,
        raise_on_no_idempotency_key=True,
    )

    def decorate(handler: Handler) -> Handler:
        guarded: Handler | None = None

        @functools.wraps(handler)  # Powertools names the idempotency records after the function
        def uncached_when_ignored(event: dict[str, Any], context: Any) -> Any:
            result = handler(event, context)
            if _is_ignored(result):
                raise _NotCached(result)  # Powertools deletes the record of a call that raised
            return result

        @functools.wraps(handler)
        def run(event: dict[str, Any], context: Any) -> Any:
            nonlocal guarded
            source, detail_type = event.get("source"), event.get("detail-type")
            if detail_type not in accepts.get(str(source), set()):
                return ignored(f"this function does not take {detail_type!r} events from {source!r}")
            if guarded is None:
                persistence = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE_NAME"])
                guarded = idempotent(persistence_store=persistence, config=config)(uncached_when_ignored)
            try:
                return guarded(event, context)
            except _NotCached as answer:
                return answer.result

        return run

    return decorate
