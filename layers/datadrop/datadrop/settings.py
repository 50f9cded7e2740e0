"""Deployment settings, read once from the environment (set by template.yaml, or by the local runtime)."""

# No `from __future__ import annotations` in the modules that define models: see datadrop.events.
import os
from typing import Literal

from pydantic import BaseModel, Field

from datadrop.names import DatasetLocations


class Settings(BaseModel):
    state_table_name: str
    idempotency_table_name: str
    event_bus_name: str
    data_bucket_name: str
    artifact_bucket_name: str
    artifact_prefix: str = Field("datasets", description="key prefix of every artifact: <prefix>/<dataset>/<version>/")
    sagemaker_role_arn: str
    name_prefix: str = "datadrop"
    default_accuracy_threshold: float = Field(0.8, ge=0, le=1)
    training_instance_type: str = "ml.m5.large"
    transform_instance_type: str = "ml.m5.large"
    endpoint_instance_type: str = "ml.m5.large"
    compute: Literal["sagemaker", "local"] = "sagemaker"
    region: str = "us-east-1"
    memory_limit_mb: int | None = Field(None, description="the function's memory (Lambda sets it); None: no limit")
    stuck_after_minutes: float = Field(30, ge=0, description="the sweeper looks at work unchanged for this long")
    give_up_after_hours: float = Field(24, gt=0, description="the sweeper ends work still stuck after this long")

    @classmethod
    def from_environment(cls) -> "Settings":
        env = os.environ

        def required(name: str) -> str:
            value = env.get(name)
            if not value:
                raise RuntimeError(f"environment variable {name} is not set (template.yaml sets it)")
            return value

        return cls(
            state_table_name=required("STATE_TABLE_NAME"),
            idempotency_table_name=required("IDEMPOTENCY_TABLE_NAME"),
            event_bus_name=required("EVENT_BUS_NAME"),
            data_bucket_name=required("DATA_BUCKET_NAME"),
            artifact_bucket_name=required("ARTIFACT_BUCKET_NAME"),
            artifact_prefix=env.get("ARTIFACT_PREFIX", "datasets"),
            sagemaker_role_arn=required("SAGEMAKER_ROLE_ARN"),
            name_prefix=env.get("NAME_PREFIX", "datadrop"),
            default_accuracy_threshold=float(env.get("DEFAULT_ACCURACY_THRESHOLD", "0.8")),
            training_instance_type=env.get("TRAINING_INSTANCE_TYPE", "ml.m5.large"),
            transform_instance_type=env.get("TRANSFORM_INSTANCE_TYPE", "ml.m5.large"),
            endpoint_instance_type=env.get("ENDPOINT_INSTANCE_TYPE", "ml.m5.large"),
            compute=env.get("DATADROP_COMPUTE", "sagemaker"),  # type: ignore[arg-type]
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            memory_limit_mb=int(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]) if env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") else None,
            stuck_after_minutes=float(env.get("STUCK_AFTER_MINUTES", "30")),
            give_up_after_hours=float(env.get("GIVE_UP_AFTER_HOURS", "24")),
        )

    def locations(self, dataset: str, version: str) -> DatasetLocations:
        """Where a dataset version's artifacts live in this stack's artifact bucket."""
        return DatasetLocations(self.artifact_bucket_name, dataset, version, self.artifact_prefix)

    def as_environment(self) -> dict[str, str]:
        """The inverse of from_environment: what the local runtime exports."""
        return {
            "STATE_TABLE_NAME": self.state_table_name,
            "IDEMPOTENCY_TABLE_NAME": self.idempotency_table_name,
            "EVENT_BUS_NAME": self.event_bus_name,
            "DATA_BUCKET_NAME": self.data_bucket_name,
            "ARTIFACT_BUCKET_NAME": self.artifact_bucket_name,
            "ARTIFACT_PREFIX": self.artifact_prefix,
            "SAGEMAKER_ROLE_ARN": self.sagemaker_role_arn,
            "NAME_PREFIX": self.name_prefix,
            "DEFAULT_ACCURACY_THRESHOLD": str(self.default_accuracy_threshold),
            "TRAINING_INSTANCE_TYPE": self.training_instance_type,
            "TRANSFORM_INSTANCE_TYPE": self.transform_instance_type,
            "ENDPOINT_INSTANCE_TYPE": self.endpoint_instance_type,
            "DATADROP_COMPUTE": self.compute,
            "AWS_DEFAULT_REGION": self.region,
            "STUCK_AFTER_MINUTES": str(self.stuck_after_minutes),
            "GIVE_UP_AFTER_HOURS": str(self.give_up_after_hours),
        }
