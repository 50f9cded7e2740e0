"""What every handler shares: Powertools idempotency on the DynamoDB table from template.yaml."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent

# A day: SageMaker and S3 may re-deliver events well after the first delivery.
IDEMPOTENCY_SECONDS = 24 * 3600

Handler = Callable[[dict[str, Any], Any], Any]


def idempotent_on(event_key_jmespath: str) -> Callable[[Handler], Handler]:
    """Run the handler once per distinct key; a duplicate gets the first result back.

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

        @functools.wraps(handler)
        def run(event: dict[str, Any], context: Any) -> Any:
            nonlocal guarded
            if guarded is None:
                persistence = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE_NAME"])
                guarded = idempotent(persistence_store=persistence, config=config)(handler)
            return guarded(event, context)

        return run

    return decorate
