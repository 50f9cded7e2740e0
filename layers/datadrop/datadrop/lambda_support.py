"""What every handler shares: Powertools idempotency on the DynamoDB table from template.yaml."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent

# A day: SageMaker and S3 may re-deliver events well after the first delivery.
IDEMPOTENCY_SECONDS = 24 * 3600


def idempotent_on(event_key_jmespath: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run the handler once per distinct key; a duplicate gets the first result back."""
    persistence = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE_NAME"])
    config = IdempotencyConfig(
        event_key_jmespath=event_key_jmespath,
        expires_after_seconds=IDEMPOTENCY_SECONDS,
        raise_on_no_idempotency_key=True,
    )
    return idempotent(persistence_store=persistence, config=config)
