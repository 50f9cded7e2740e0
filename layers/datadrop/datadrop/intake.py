"""The prepare step: fetch an uploaded object, check it against its dataset config, prepare it
for training, store the prepared artefacts and announce DatasetPrepared (or DatasetRejected).

The uploaded object is only ever read. Every rejection says what to fix.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aws_lambda_powertools import Logger

# datadrop.dataprep (polars) waits for the first data, but the report's models, which every prepared
# upload fills, load with the step (events.py imports only their short form, for the other steps).
import datadrop.quality  # noqa: F401
from datadrop import channels, names, observability
from datadrop.config import ConfigError, DatasetConfig, parse_config, ready_to_parse, validate_dataset_name
from datadrop.events import DatasetPrepared, DatasetRejected, PreparedArtifacts, SourceObject
from datadrop.metrics import MetricError
from datadrop.services import Services
from datadrop.serving import build_serving_bundle
from datadrop.state import VersionStatus
from datadrop.storage import ObjectNotFound, ObjectTooLarge

logger = Logger(child=True)

ready_to_parse()  # every upload parses its dataset's config: PyYAML and the validator load with the step

UNKNOWN_DATASET = "unassigned"

# What prepare needs, from bench/dataprep.py (bench/README.md, 2026-12-02, 2-core VM). A plain or gzip CSV
# file is read a chunk at a time: peak RSS measured 361 MB + 1.67 x the file (2.03x at 1 GB, imports
# included); planning FIXED_MEMORY_MIB + 2.5 x lies above that line for files over about 200 MB, and the
# guard only binds far above that (about 1.2 GB at 3008 MB).
# Anything else (Parquet, JSON Lines, other encodings, malformed rows) is read whole first, which
# measured 6.4-6.8 times before: 7.
# Both hold for long files. A wide file of mostly distinct numbers needs memory per distinct value of each
# column rather than per byte (10x its size at 120 MB, 20,000 columns), which no plan made from the size
# alone can know before the download: prepare gets what is left after FIXED_MEMORY_MIB (_memory_budget)
# and rejects such a file itself once it has counted enough of it (dataprep.PREPARE_BYTES_PER_DISTINCT).
PEAK_MEMORY_PER_INPUT_BYTE = 2.5
IN_MEMORY_PEAK_PER_INPUT_BYTE = 7
FIXED_MEMORY_MIB = 200  # the interpreter, polars, boto3 and the handler
# prepare measured 13 MB/s at 1 GB (spawn to exit) on 2 cores that other work kept 97 % busy; the plan
# assumes 10 MB/s for download, prepare and upload together, and keeps TIME_RESERVE_SECONDS for the rest.
PLANNED_MB_PER_SECOND = 10.0
TIME_RESERVE_SECONDS = 30.0


@dataclass(frozen=True)
class IntakeOutcome:
    outcome: Literal["prepared", "duplicate", "rejected", "retrying", "ignored"]
    dataset: str
    version: str | None = None
    reason: str | None = None


class _Rejection(Exception):
    def __init__(self, stage: Literal["config", "data"], reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


def load_config(services: Services, dataset: str) -> DatasetConfig:
    bucket = services.settings.data_bucket_name
    for key in names.config_keys(dataset):
        try:
            raw = services.objects.read(bucket, key)
        except ObjectNotFound:
            continue
        try:
            return parse_config(raw, f"s3://{bucket}/{key}")
        except ConfigError as error:
            raise _Rejection("config", str(error)) from error
    raise _Rejection(
        "config",
        f"no config for dataset {dataset!r}: upload s3://{bucket}/{names.config_keys(dataset)[0]} "
        "containing at least `target: <column to predict>`, then upload the data again",
    )


def is_upload(services: Services, source: SourceObject) -> bool:
    """Only objects put under incoming/ in the data bucket are uploads: config files, other
    buckets and other prefixes are not prepare's business, whatever a rule lets through."""
    return source.bucket == services.settings.data_bucket_name and source.key.startswith(names.INCOMING_PREFIX)


def handle_upload(services: Services, source: SourceObject, remaining_millis: Callable[[], int] | None = None) -> IntakeOutcome:
    """`remaining_millis`: how long the invocation may still run (the Lambda context's get_remaining_time_in_millis)."""
    if not is_upload(services, source):
        logger.info("not an upload; ignored", bucket=source.bucket, key=source.key)
        return IntakeOutcome("ignored", "")
    dataset = names.dataset_from_key(source.key)
    try:
        if dataset is None:
            dataset = UNKNOWN_DATASET
            raise _Rejection("data", f"{source.key!r} is not in a dataset folder: upload to incoming/<dataset>/<file>.csv")
        try:
            validate_dataset_name(dataset)
        except ConfigError as error:
            raise _Rejection("config", str(error)) from error
        config = load_config(services, dataset)
        return _prepare(services, dataset, config, source, remaining_millis)
    except _Rejection as rejection:
        return _reject(services, dataset or UNKNOWN_DATASET, source, rejection)


def _prepare(
    services: Services,
    dataset: str,
    config: DatasetConfig,
    source: SourceObject,
    remaining_millis: Callable[[], int] | None = None,
) -> IntakeOutcome:
    from datadrop import dataprep  # polars is imported only when there is data to prepare

    settings = services.settings
    largest = _largest_upload(settings.memory_limit_mb, PEAK_MEMORY_PER_INPUT_BYTE)
    where = f"s3://{source.bucket}/{source.key}"

    def fits_in_time(size: int) -> None:
        """Rejects, before the download, an upload that would not be prepared before the invocation times out."""
        if remaining_millis is None:
            return
        left = remaining_millis() / 1000 - TIME_RESERVE_SECONDS
        needed = size / 1e6 / PLANNED_MB_PER_SECOND
        if needed > left:
            raise _Rejection(
                "data",
                f"{where} is {size / 1e6:.1f} MB, which the prepare function needs about {needed:.0f} s for (planning "
                f"{PLANNED_MB_PER_SECOND:g} MB/s), but it has {max(left, 0):.0f} s left before its timeout: upload a "
                f"smaller sample (up to about {max(left, 0) * PLANNED_MB_PER_SECOND:.0f} MB), or split the file and "
                "upload the parts as separate datasets",
            )

    with tempfile.TemporaryDirectory(prefix="datadrop-prepare-") as workspace:
        path = os.path.join(workspace, "upload")
        try:
            _, digest = services.objects.download(
                source.bucket, source.key, path, source.version_id, max_bytes=largest, check_size=fits_in_time
            )
        except ObjectNotFound as error:
            raise _Rejection("data", f"{where} no longer exists; upload it again") from error
        except ObjectTooLarge as error:
            # Rejected before reading, instead of running out of memory and retrying into the DLQ.
            raise _Rejection(
                "data",
                f"{where} is {error.size / 1e6:.1f} MB, but the prepare function's {settings.memory_limit_mb} MB of "
                f"memory prepares files up to about {(largest or 0) / 1e6:.1f} MB: upload a smaller sample, or raise "
                "PrepareFunction's MemorySize in template.yaml (10240 MB handles about 4 GB of CSV)",
            ) from error
        except OSError as error:  # ENOSPC: /tmp is smaller than the upload
            raise _Rejection(
                "data",
                f"{where} does not fit in the prepare function's temporary storage ({error.strerror}): raise "
                "PrepareFunction's EphemeralStorage in template.yaml (up to 10240 MB), or upload a smaller file",
            ) from error
        version = names.dataset_version(digest, config.fingerprint())
        observability.correlate(dataset, version)
        existing = services.state.get_version(dataset, version)
        if existing is not None:
            services.state.flush_version(dataset, version)  # a retried invocation publishes what is pending
            if existing.status == VersionStatus.FAILED:
                # The same bytes uploaded again after a failure: the user asks for another attempt.
                from datadrop.recovery import retry_version

                retry_version(services, dataset, version)
                return IntakeOutcome("retrying", dataset, version)
            logger.info(
                "dataset version already in progress or done", dataset=dataset, version=version, status=existing.status.value
            )
            return IntakeOutcome("duplicate", dataset, version)

        started = time.monotonic()
        try:
            prepared = dataprep.prepare(
                path,
                config,
                max_bytes=largest,  # also bounds what a gzip file unpacks to
                max_in_memory_bytes=_largest_upload(settings.memory_limit_mb, IN_MEMORY_PEAK_PER_INPUT_BYTE),
                # what is planned after the download depends on the columns' distinct values, not only the size
                max_memory_bytes=_memory_budget(settings.memory_limit_mb),
            )
        except dataprep.DatasetRejected as error:
            raise _Rejection("data", error.reason) from error
    observability.duration("PrepareDuration", (time.monotonic() - started) * 1000)
    problem_type = prepared.recipe["problem_type"]
    try:  # with problem_type auto, only now is it known whether the config's metric and threshold fit
        metric, threshold = config.judged_by(problem_type, settings.default_accuracy_threshold)
        config.check_algorithms_fit(problem_type)
    except MetricError as error:
        raise _Rejection("config", str(error)) from error

    locations = settings.locations(dataset, version)
    bucket = settings.artifact_bucket_name
    extra = channels.algorithm_channels(
        (choice.name for choice in config.algorithm_choices()), locations, prepared.train_csv, prepared.validation_csv
    )
    recipe_json = json.dumps({**prepared.recipe, **extra.recipe}, indent=2, sort_keys=True).encode()
    services.objects.write(bucket, locations.key(locations.TRAIN), prepared.train_csv, "text/csv")
    services.objects.write(bucket, locations.key(locations.VALIDATION), prepared.validation_csv, "text/csv")
    services.objects.write(bucket, locations.key(locations.TEST_FEATURES), prepared.test_rows_jsonl, "application/jsonlines")
    for key, (body, content_type) in extra.files.items():
        services.objects.write(bucket, key, body, content_type)
    services.objects.write_json(bucket, locations.key(locations.TEST_LABELS), prepared.test_labels)
    services.objects.write(bucket, locations.key(locations.RECIPE), recipe_json, "application/json")
    report = prepared.report.model_copy(update={"dataset": dataset, "version": version})
    services.objects.write(
        bucket, locations.key(locations.PROFILE), report.model_dump_json(indent=2).encode(), "application/json"
    )
    services.objects.write(bucket, locations.key(locations.SERVING_BUNDLE), build_serving_bundle(recipe_json), "application/gzip")

    classes = [str(label) for label in prepared.recipe["classes"]]
    rows = {split: report.splits[split].rows for split in ("train", "validation", "test")}
    event = DatasetPrepared(
        dataset=dataset,
        version=version,
        source=source,
        artifacts=PreparedArtifacts(
            train=locations.channel_uri(locations.TRAIN),
            validation=locations.channel_uri(locations.VALIDATION),
            test=locations.uri(locations.TEST_FEATURES),
            test_labels=locations.uri(locations.TEST_LABELS),
            recipe=locations.uri(locations.RECIPE),
            serving_bundle=locations.uri(locations.SERVING_BUNDLE),
            profile=locations.uri(locations.PROFILE),
            **extra.artifacts,
        ),
        problem_type=problem_type,
        classes=classes,
        rows=rows,
        metric=metric,
        threshold=threshold,
        algorithms=config.algorithm_choices(),  # each with its space: train plans the runs from them
        feature_dim=len(prepared.recipe["features"]),
        search=config.search,
        experiment=config.experiment,
        gate=config.gate,
        approval=config.approval,
        deployment=config.deployment,
        quality=report.summary(),
    )
    # The version's record and its announcement are one write; the artefacts above were written
    # first, so nothing half-written is ever announced.
    services.state.create_version(
        dataset,
        version,
        {
            "source": source.model_dump(),
            "threshold": threshold,
            "metric": metric,
            "rows": rows,
            "prepared": event.model_dump_json(),
        },  # kept whole (as JSON: never queried into), for the sweeper and retries
        publish=[event],
    )
    services.state.flush_version(dataset, version)
    observability.count("UploadsPrepared")
    logger.info("dataset prepared", dataset=dataset, version=version, rows=rows)
    return IntakeOutcome("prepared", dataset, version)


def _memory_budget(memory_limit_mb: int | None) -> int | None:
    """The memory prepare may use beyond the runtime's own, in bytes (None: no limit)."""
    if not memory_limit_mb:
        return None
    return max(0, (memory_limit_mb - FIXED_MEMORY_MIB) * 2**20)


def _largest_upload(memory_limit_mb: int | None, peak_per_input_byte: float) -> int | None:
    """The largest upload a function with this much memory prepares, in bytes (None: no limit)."""
    budget = _memory_budget(memory_limit_mb)
    return None if budget is None else int(budget / peak_per_input_byte)


def _reject(services: Services, dataset: str, source: SourceObject, rejection: _Rejection) -> IntakeOutcome:
    source_id = f"{source.key}#{source.version_id or source.etag or 'unversioned'}"
    services.state.record_rejection(
        dataset,
        source_id,
        {"stage": rejection.stage, "reason": rejection.reason, "source": source.model_dump()},
        publish=[DatasetRejected(dataset=dataset, source=source, stage=rejection.stage, reason=rejection.reason)],
    )
    services.state.flush(services.state.rejection_item(dataset, source_id))
    observability.count("UploadsRejected")
    logger.warning("dataset rejected", dataset=dataset, key=source.key, reason=rejection.reason)
    return IntakeOutcome("rejected", dataset, reason=rejection.reason)
