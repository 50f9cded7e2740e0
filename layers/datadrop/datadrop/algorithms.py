"""The algorithms datadrop trains, and where their SageMaker images live.

The XGBoost registry accounts are copied from the SageMaker Python SDK's
`image_uri_config/xgboost.json` (version 3.0-5): the SDK is too big for Lambda, and a test
(tests/unit/test_algorithms.py) checks this table against the SDK so it cannot silently drift.
"""

from __future__ import annotations

XGBOOST_VERSION = "3.0-5"
XGBOOST_REPOSITORY = "sagemaker-xgboost"

XGBOOST_REGISTRIES: dict[str, str] = {
    "af-south-1": "510948584623",
    "ap-east-1": "651117190479",
    "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "720646828776",
    "ap-south-2": "628508329040",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
    "ap-southeast-3": "951798379941",
    "ap-southeast-4": "106583098589",
    "ca-central-1": "341280168497",
    "ca-west-1": "190319476487",
    "cn-north-1": "450853457545",
    "cn-northwest-1": "451049120500",
    "eu-central-1": "492215442770",
    "eu-central-2": "680994064768",
    "eu-north-1": "662702820516",
    "eu-south-1": "978288397137",
    "eu-south-2": "104374241257",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-west-3": "659782779980",
    "il-central-1": "898809789911",
    "me-central-1": "272398656194",
    "me-south-1": "801668240914",
    "sa-east-1": "737474898029",
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-gov-east-1": "237065988967",
    "us-gov-west-1": "414596584902",
    "us-iso-east-1": "833128469047",
    "us-isob-east-1": "281123927165",
    "us-isof-east-1": "108575199400",
    "us-isof-south-1": "124985052026",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
}

_DNS_SUFFIX_BY_REGION_PREFIX = (
    ("cn-", "amazonaws.com.cn"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("us-iso-", "c2s.ic.gov"),
)


class UnsupportedRegion(ValueError):
    pass


def xgboost_image_uri(region: str) -> str:
    """The built-in XGBoost image for a region, as `sagemaker.image_uris.retrieve` returns it."""
    account = XGBOOST_REGISTRIES.get(region)
    if account is None:
        raise UnsupportedRegion(
            f"SageMaker XGBoost {XGBOOST_VERSION} has no image in {region}; supported: {', '.join(sorted(XGBOOST_REGISTRIES))}"
        )
    suffix = next((dns for prefix, dns in _DNS_SUFFIX_BY_REGION_PREFIX if region.startswith(prefix)), "amazonaws.com")
    return f"{account}.dkr.ecr.{region}.{suffix}/{XGBOOST_REPOSITORY}:{XGBOOST_VERSION}"


def xgboost_objective(problem_type: str, num_classes: int) -> dict[str, str]:
    """Objective, class count and evaluation metrics for the built-in algorithm (strings, as SageMaker wants)."""
    if problem_type == "regression":
        return {"objective": "reg:squarederror", "eval_metric": "rmse"}
    if problem_type == "binary":
        return {"objective": "binary:logistic", "eval_metric": "logloss"}
    return {"objective": "multi:softprob", "num_class": str(num_classes), "eval_metric": "mlogloss"}


def xgboost_tuning_objective(problem_type: str, num_classes: int) -> dict[str, str]:
    """What a tuning job minimises: the validation channel's loss (the metric the container logs for
    the eval_metric above: validation:logloss, validation:mlogloss or validation:rmse, each listed
    with direction Minimize in SageMaker's XGBoost tuning docs). Never the test split: that one stays held out."""
    return {"Type": "Minimize", "MetricName": f"validation:{xgboost_objective(problem_type, num_classes)['eval_metric']}"}
