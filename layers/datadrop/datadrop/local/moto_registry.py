"""The local SageMaker's model registry announces approvals, as SageMaker does.

SageMaker puts "SageMaker Model Package State Change" on the default bus when a package's approval
status changes (a person approving it in Studio, or UpdateModelPackage); moto's UpdateModelPackage
changes the status and says nothing, and it also forgets the package's CustomerMetadataProperties
and ApprovalDescription when a request does not repeat them (SageMaker keeps them). This patch,
installed by the local stack (in-process and `datadrop up`'s server), fills both gaps in moto's
backend, so the approval reaches EventBridge however it was made (boto3, the AWS CLI, `datadrop
approve`). The event has the documented shape (tests/fixtures/aws-events/
sagemaker_model_package_state_change.docs.json).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

DETAIL_TYPE = "SageMaker Model Package State Change"
_done = False


def _iso(moment: Any) -> str:
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return str(moment)


def state_change_detail(package: Any, updated: list[str]) -> dict[str, Any]:
    """The event's detail, from moto's model package (the fields the documented sample has)."""
    detail: dict[str, Any] = {
        "ModelPackageGroupName": package.model_package_group_name,
        "ModelPackageVersion": package.model_package_version,
        "ModelPackageArn": package.arn,
        "CreationTime": _iso(package.creation_time),
        "InferenceSpecification": package.inference_specification,
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
        "CertifyForMarketplace": bool(package.certify_for_marketplace),
        "ModelApprovalStatus": package.model_approval_status,
        "LastModifiedTime": _iso(getattr(package, "last_modified_time", None) or datetime.now(UTC)),
        "UpdatedModelPackageFields": updated,
    }
    if package.model_metrics:
        detail["ModelMetrics"] = package.model_metrics
    if package.metadata_properties:
        detail["MetadataProperties"] = package.metadata_properties
    return detail


def announce_model_package_changes() -> None:
    """Patch moto's SageMaker backend (idempotent)."""
    global _done
    if _done:
        return
    from moto.events.models import events_backends
    from moto.sagemaker.models import SageMakerModelBackend

    original = SageMakerModelBackend.update_model_package

    def update_model_package(
        self: Any,
        model_package_arn: str,
        model_approval_status: str | None,
        approval_description: str | None,
        customer_metadata_properties: dict[str, str] | None,
        customer_metadata_properties_to_remove: list[str],
        additional_inference_specifications_to_add: list[Any] | None,
    ) -> str:
        package = self.describe_model_package(model_package_arn)
        before = package.model_approval_status
        if customer_metadata_properties is None:
            customer_metadata_properties = dict(package.customer_metadata_properties or {})
        arn = original(
            self,
            model_package_arn,
            model_approval_status,
            approval_description if approval_description is not None else package.approval_description,
            customer_metadata_properties,
            customer_metadata_properties_to_remove or [],
            additional_inference_specifications_to_add,
        )
        if model_approval_status and model_approval_status != before:
            updated = ["ModelApprovalStatus"] + (["ApprovalDescription"] if approval_description else [])
            events_backends[self.account_id][self.region_name].put_events(
                [
                    {
                        "Source": "aws.sagemaker",
                        "DetailType": DETAIL_TYPE,
                        "Detail": json.dumps(state_change_detail(package, updated), default=str),
                        "Resources": [package.arn],
                    }
                ]
            )
        return arn

    SageMakerModelBackend.update_model_package = update_model_package  # type: ignore[method-assign]
    _done = True
