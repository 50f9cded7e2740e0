"""The local SageMaker compute adapter: the same API calls, really executed on this machine.

Every request still goes through boto3 to the (moto) SageMaker control plane, so botocore
validates it exactly as AWS would. The work itself runs here, under the SageMaker container
contract: channels downloaded from S3, hyperparameters as strings, `model.tar.gz` uploaded to
`<S3OutputPath>/<job>/output/`, batch transform output at `<S3OutputPath>/<input file>.out`,
endpoints as HTTP servers on 127.0.0.1. When a job or endpoint changes state, the adapter puts
the same "SageMaker ... State Change" event on the default bus that SageMaker would.

That work is SageMaker's, done with the role a job or model is given, not with the calling
function's: it runs `as_function(SAGEMAKER_ROLE)`, so the per-function request records (the IAM
parity test) keep it apart from the API calls the function itself makes.

A hyperparameter tuning job runs here too: its training jobs are launched the way SageMaker
launches them (named `<tuning job>-<NNN>-<hash>`, carrying `TuningJobArn` and
`_tuning_objective_metric`), at most MaxParallelTrainingJobs at a time, each with values from a
sequential Bayesian optimiser (`datadrop.local.tuning`), until MaxNumberOfTrainingJobs; then the
tuning job's own state-change event goes out.

moto gaps handled here (and only here): moto overwrites a job created twice (SageMaker says
ResourceInUse), marks jobs Completed at once with fake metrics, has no UpdateEndpoint, and has
no ListTrainingJobsForHyperParameterTuningJob (answered from here, at the HTTP layer, so botocore
still validates the request and parses the answer).
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import pickle
import shutil
import tarfile
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError
from moto.core.botocore_stubber import MockRawResponse

from datadrop import algorithms
from datadrop.algorithms import ALGORITHM_TAG
from datadrop.algorithms.jumpstart import is_jumpstart_content
from datadrop.compute import CapacityError, SageMakerCompute
from datadrop.local import ports, runner
from datadrop.local.endpoint import LocalEndpoint
from datadrop.local.model import ModelFiles, ScriptStage, TwinStage
from datadrop.local.pickling import allow_locks
from datadrop.serving import ALGORITHM_VARIABLE, STAGE_VARIABLE
from datadrop.storage import split_s3_uri

ACCOUNT = "123456789012"
# The logical id in template.yaml of the role SageMaker works with (jobs, models, endpoints).
SAGEMAKER_ROLE = "SageMakerExecutionRole"


@contextmanager
def as_function(name: str) -> Iterator[None]:
    """Lambda sets AWS_LAMBDA_FUNCTION_NAME in a function's environment; so does the local runtime
    while it runs a handler (logs and the tests' per-function request records use it), and the local
    SageMaker while it does SageMaker's own work (with SAGEMAKER_ROLE)."""
    previous = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    os.environ["AWS_LAMBDA_FUNCTION_NAME"] = name
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("AWS_LAMBDA_FUNCTION_NAME", None)
        else:
            os.environ["AWS_LAMBDA_FUNCTION_NAME"] = previous


JobKind = Literal["training", "transform", "tuning"]


@dataclass
class _Job:
    kind: Literal["training", "transform"]
    request: dict[str, Any]
    status: str = "InProgress"
    result: dict[str, Any] = field(default_factory=dict)
    tuning: str | None = None  # the tuning job that launched it


@dataclass
class _Tuning:
    request: dict[str, Any]
    tuner: Any  # datadrop.local.tuning.BayesianTuner (imported when a tuning job starts: Optuna is heavy)
    children: list[str] = field(default_factory=list)
    status: str = "InProgress"
    created: str = ""


@dataclass(frozen=True)
class _TransformWork:
    """A batch transform's work, fetched: the model, and each input file with its output file."""

    model: ModelFiles
    files: list[tuple[Path, Path]]
    content_type: str
    accept: str

    @property
    def arguments(self) -> tuple[ModelFiles, list[tuple[Path, Path]], str, str]:
        return self.model, self.files, self.content_type, self.accept


@dataclass
class LocalCompute(SageMakerCompute):
    s3: Any = None  # boto3 S3 client (moto)
    events: Any = None  # boto3 EventBridge client (moto), default bus
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="datadrop-compute-")))
    # SageMaker names are unique per resource type, so a training and a transform job may share one.
    _jobs: dict[tuple[str, str], _Job] = field(default_factory=dict)
    _tunings: dict[str, _Tuning] = field(default_factory=dict)
    _pending: deque[tuple[JobKind, str]] = field(default_factory=deque)
    _models: dict[str, dict[str, Any]] = field(default_factory=dict)
    _endpoint_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _endpoints: dict[str, tuple[str, LocalEndpoint]] = field(default_factory=dict)
    _failed_endpoints: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (config, FailureReason)
    _update_failures: dict[str, str] = field(default_factory=dict)  # name -> why its last update was rolled back
    log: list[str] = field(default_factory=list)
    on_log: Any = None  # callable(str): progress for people, e.g. the CLI
    workers: int = 1  # training and transform jobs at once, each in a worker process (`step`; `run_next` runs one here)
    journal: Path | None = None  # where `save` keeps the state (`datadrop up`); None: in memory only
    on_finished: Callable[[], None] | None = None  # called (from another thread) when a job's worker process is done
    _running: dict[tuple[str, str], tuple[Future[Any], Callable[[Any], None]]] = field(default_factory=dict)
    _pool: ProcessPoolExecutor | None = None

    def __post_init__(self) -> None:
        if self.client is not None:
            # before-call: after botocore validated the request, instead of sending it.
            self.client.meta.events.register_first(
                "before-call.sagemaker.ListTrainingJobsForHyperParameterTuningJob", self._answer_list_tuning_training_jobs
            )

    def _say(self, message: str) -> None:
        self.log.append(message)
        if self.on_log:
            self.on_log(message)

    # -- jobs ---------------------------------------------------------------------------------
    def start_training_job(self, request: dict[str, Any]) -> bool:
        return self._submit("training", request["TrainingJobName"], request, super().start_training_job)

    def start_transform_job(self, request: dict[str, Any]) -> bool:
        return self._submit("transform", request["TransformJobName"], request, super().start_transform_job)

    def _submit(self, kind: Literal["training", "transform"], name: str, request: dict[str, Any], create: Any) -> bool:
        if (kind, name) in self._jobs:
            return False  # SageMaker: ResourceInUse
        # Registered before the call: once SageMaker accepted a job it runs, even if the caller
        # dies right after; only a refused call takes it back.
        self._jobs[(kind, name)] = _Job(kind, request)
        self._pending.append((kind, name))
        try:
            create(request)
        except (ClientError, CapacityError):  # refused: there is no job
            del self._jobs[(kind, name)]
            self._pending.remove((kind, name))
            raise
        self.save()
        return True

    def describe_training_job(self, name: str) -> dict[str, Any]:
        description = super().describe_training_job(name)
        job = self._jobs.get(("training", name))
        if job is not None and job.tuning is not None:
            description = {**description, "TuningJobArn": self._tuning_arn(job.tuning)}
        return self._overlay(job, description, "TrainingJobStatus")

    def describe_transform_job(self, name: str) -> dict[str, Any]:
        description = super().describe_transform_job(name)
        return self._overlay(self._jobs.get(("transform", name)), description, "TransformJobStatus")

    @staticmethod
    def _overlay(job: _Job | None, description: dict[str, Any], status_key: str) -> dict[str, Any]:
        if job is None:
            return description
        description = {key: value for key, value in description.items() if key != "FinalMetricDataList"}
        description[status_key] = job.status
        description.update(job.result)
        return description

    def jobs(self, kind: Literal["training", "transform"]) -> list[str]:
        return [name for job_kind, name in self._jobs if job_kind == kind]

    def run_next(self) -> str | None:
        """Run one pending job to its end and announce it; returns its name, or None when idle."""
        if not self._pending:
            return None
        kind, name = self._pending.popleft()
        with as_function(SAGEMAKER_ROLE):
            if kind == "tuning":
                self._advance_tuning(name)
            elif kind == "training":
                self._run_training(name, self._jobs[(kind, name)])
            else:
                self._run_transform(name, self._jobs[(kind, name)])
        self.save()
        return name

    def step(self) -> bool:
        """The service's pump (`datadrop up`): finish the jobs whose worker process is done, start
        pending training and transform jobs in worker processes while fewer than `workers` run, and
        make the tuning jobs' decisions (quick) here. Returns whether anything happened. `run_next`
        is the one-at-a-time, in-process form the in-process stack and the tests use."""
        progressed = False
        for (kind, name), (future, finish) in list(self._running.items()):
            if future.done():
                del self._running[(kind, name)]
                try:
                    outcome = future.result()
                except Exception as error:  # noqa: BLE001 - the worker process died: the job failed, as on an instance failure
                    reason = f"the {kind} process failed: {type(error).__name__}: {error}"[:1024]
                    outcome = ([], reason) if kind == "training" else reason
                    self._pool = None  # a broken pool takes no more work; the next start makes a new one
                with as_function(SAGEMAKER_ROLE):
                    finish(outcome)
                progressed = True
        for kind, name in list(self._pending):
            if kind != "tuning" and len(self._running) >= self.workers:
                continue
            self._pending.remove((kind, name))
            progressed = True
            with as_function(SAGEMAKER_ROLE):
                if kind == "tuning":
                    self._advance_tuning(name)
                else:
                    self._start_in_worker_process(kind, name, self._jobs[(kind, name)])
        if progressed:
            self.save()
        return progressed

    def _start_in_worker_process(self, kind: str, name: str, job: _Job) -> None:
        """Fetch the job's inputs here, run the container's work in a worker process; the outputs
        are uploaded and the job announced here when it ends (`step`)."""
        finish: Callable[[Any], None]
        future: Future[Any]
        if kind == "training":
            algorithm, channels, hyperparameters, model_dir = self._prepare_training(name, job)
            future = self._process_pool().submit(runner.train_in_process, algorithm, channels, hyperparameters, model_dir)

            def finish(outcome: Any) -> None:
                self._finish_training(name, job, model_dir, outcome)
        else:
            work = self._prepare_transform(name, job)
            if isinstance(work, str):  # its inputs could not be fetched: it failed already
                self._finish_transform(name, job, work)
                return
            future = self._process_pool().submit(runner.transform_in_process, *work.arguments)

            def finish(outcome: Any) -> None:
                self._finish_transform(name, job, outcome, work)

        if self.on_finished is not None:
            future.add_done_callback(lambda _future: self.on_finished() if self.on_finished else None)
        self._running[(kind, name)] = (future, finish)

    def busy(self) -> bool:
        return bool(self._pending or self._running)

    def _process_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the service process has threads (endpoints, HTTP clients).
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=runner.exit_with_parent
            )
        return self._pool

    def warm_up(self) -> None:
        """Start the worker processes now, so the first job does not wait for their imports."""
        if self.workers > 0:
            pool = self._process_pool()
            for _ in range(self.workers):
                pool.submit(runner.warm_up)

    # -- the journal: what SageMaker would remember across a restart of this machine ---------------
    def save(self) -> None:
        """Write the jobs, tuning jobs, models, endpoint configs and endpoints (with their ports) to
        the journal, atomically. A job that was running is still InProgress there: a restarted
        service runs it again under the same name (one job, as SageMaker would have kept it)."""
        if self.journal is None:
            return
        allow_locks()
        state = {
            "format": JOURNAL_FORMAT,
            "jobs": self._jobs,
            "tunings": self._tunings,
            "pending": list(self._pending),
            "models": self._models,
            "endpoint_configs": self._endpoint_configs,
            "endpoints": {name: (config, server.port) for name, (config, server) in self._endpoints.items()},
            "failed_endpoints": self._failed_endpoints,
            "update_failures": self._update_failures,
        }
        partial = self.journal.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(partial, self.journal)

    def restore(self) -> list[str]:
        """Load the journal: re-queue the jobs that were running, serve every endpoint again (on
        its old port when it is free). Returns what it did, for the service's log."""
        if self.journal is None or not self.journal.exists():
            return []
        allow_locks()
        try:
            state = pickle.loads(self.journal.read_bytes())
            if state.get("format") != JOURNAL_FORMAT:
                raise ValueError(f"not a journal of format {JOURNAL_FORMAT}")
        except Exception as error:  # whatever unpickling raises, the file is unreadable
            raise JournalError(
                f"the local SageMaker's journal {self.journal} cannot be read ({type(error).__name__}: {error}); "
                f"move it aside (mv {self.journal} {self.journal}.broken) to start without its jobs and endpoints"
            ) from error
        self._jobs, self._tunings, self._models, self._endpoint_configs = (
            state["jobs"],
            state["tunings"],
            state["models"],
            state["endpoint_configs"],
        )
        self._pending = deque(tuple(item) for item in state["pending"])
        self._failed_endpoints = state.get("failed_endpoints", {})
        self._update_failures = state.get("update_failures", {})
        done: list[str] = []
        for (kind, name), job in self._jobs.items():
            if job.status == "InProgress":
                if (kind, name) not in self._pending:  # it was running: it goes first
                    self._pending.appendleft((job.kind, name))
                done.append(f"{kind} job {name} was in progress: it runs again")
        for name, (config_name, port) in state["endpoints"].items():
            with as_function(SAGEMAKER_ROLE):
                server = LocalEndpoint(self._endpoint_model(name, config_name), port=port if ports.is_free(port) else 0)
                server.start()
            self._endpoints[name] = (config_name, server)
            moved = "" if server.port == port else f" (port {port} is taken)"
            done.append(f"endpoint {name}: serving again at {server.url}{moved}")
        return done

    def _run_training(self, name: str, job: _Job) -> None:
        algorithm, channels, hyperparameters, model_dir = self._prepare_training(name, job)
        self._finish_training(name, job, model_dir, runner.train_in_process(algorithm, channels, hyperparameters, model_dir))

    def _prepare_training(self, name: str, job: _Job) -> tuple[str, dict[str, Path], dict[str, str], Path]:
        """What the training container finds: the channels under input/data, an empty model dir."""
        request = job.request
        root = self.workdir / "training" / name
        shutil.rmtree(root, ignore_errors=True)
        channels: dict[str, Path] = {}
        for channel in request["InputDataConfig"]:
            channel_dir = root / "input" / "data" / channel["ChannelName"]
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            if is_jumpstart_content(uri):
                # AWS's public JumpStart bucket (the training script, the pretrained model) is not in the
                # local stack; the twin is the script, and needs neither.
                channel_dir.mkdir(parents=True, exist_ok=True)
            else:
                self._download_prefix(uri, channel_dir)
            channels[channel["ChannelName"]] = channel_dir
        model_dir = root / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        algorithm = training_algorithm(request)
        self._say(f"training job {name}: {algorithm} on this machine")
        return algorithm, channels, dict(request.get("HyperParameters", {})), model_dir

    def _finish_training(self, name: str, job: _Job, model_dir: Path, outcome: runner.TrainingOutcome) -> None:
        metrics, failure = outcome
        if failure is not None:
            job.status = "Failed"
            job.result = {"FailureReason": failure, "SecondaryStatus": "Failed"}
        else:
            output_uri = job.request["OutputDataConfig"]["S3OutputPath"].rstrip("/") + f"/{name}/output/model.tar.gz"
            self._upload(output_uri, _tar_directory(model_dir))
            job.status = "Completed"
            job.result = {
                "ModelArtifacts": {"S3ModelArtifacts": output_uri},
                "FinalMetricDataList": [
                    {"MetricName": metric["MetricName"], "Value": float(metric["Value"]), "Timestamp": datetime.now(UTC)}
                    for metric in metrics
                ],
                "SecondaryStatus": "Completed",
            }
        self._say(f"training job {name}: {job.status}")
        self._announce_training(name, job)
        if job.tuning is not None:
            scores = {metric["MetricName"]: metric["Value"] for metric in job.result.get("FinalMetricDataList", [])}
            self._tunings[job.tuning].tuner.tell(name, scores)
            self._pending.append(("tuning", job.tuning))  # launch the next one, or end

    def _run_transform(self, name: str, job: _Job) -> None:
        work = self._prepare_transform(name, job)
        if isinstance(work, str):
            self._finish_transform(name, job, work)
        else:
            self._finish_transform(name, job, runner.transform_in_process(*work.arguments), work)

    def _prepare_transform(self, name: str, job: _Job) -> _TransformWork | str:
        """The model and the input files, on this machine; or why they could not be fetched."""
        request = job.request
        root = self.workdir / "transform" / name
        shutil.rmtree(root, ignore_errors=True)
        try:
            model = self._materialise_model(request["ModelName"], root)
            input_uri = request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
            files = self._download_prefix(input_uri, root / "input")
            if not files:
                raise ValueError(f"no input objects under {input_uri}")
        except Exception as error:  # noqa: BLE001 - a failed job is reported as SageMaker would: status + reason
            return f"{type(error).__name__}: {error}"[:1024]
        return _TransformWork(
            model,
            [(local_file, root / "output" / f"{local_file.name}.out") for local_file in files],
            request["TransformInput"].get("ContentType", "text/csv"),
            request["TransformOutput"].get("Accept", "text/csv"),
        )

    def _finish_transform(self, name: str, job: _Job, failure: str | None, work: _TransformWork | None = None) -> None:
        """Upload the outputs as `<S3OutputPath>/<input file>.out`, then announce the job's end."""
        request = job.request
        if failure is None and work is not None:
            output_prefix = request["TransformOutput"]["S3OutputPath"].rstrip("/")
            for source, output in work.files:
                self._upload(f"{output_prefix}/{source.name}.out", output.read_bytes())
        if failure is None:
            job.status = "Completed"
        else:
            job.status = "Failed"
            job.result = {"FailureReason": failure}
        self._say(f"transform job {name}: {job.status}")
        detail = {
            "TransformJobName": name,
            "TransformJobArn": f"arn:aws:sagemaker:{self.region}:{ACCOUNT}:transform-job/{name}",
            "TransformJobStatus": job.status,
            "ModelName": request["ModelName"],
            "TransformInput": request["TransformInput"],
            "TransformOutput": request["TransformOutput"],
            "TransformResources": request["TransformResources"],
            "CreationTime": _now_iso(),
            "TransformEndTime": _now_iso(),
            "Tags": {},
        }
        if "FailureReason" in job.result:
            detail["FailureReason"] = job.result["FailureReason"]
        self._announce("SageMaker Transform Job State Change", f"transform-job/{name}", detail)

    def _announce_training(self, name: str, job: _Job) -> None:
        request = job.request
        detail: dict[str, Any] = {
            "TrainingJobName": name,
            "TrainingJobArn": f"arn:aws:sagemaker:{self.region}:{ACCOUNT}:training-job/{name}",
            "TrainingJobStatus": job.status,
            "SecondaryStatus": job.result.get("SecondaryStatus", job.status),
            "HyperParameters": request.get("HyperParameters", {}),
            "AlgorithmSpecification": request["AlgorithmSpecification"],
            "RoleArn": request["RoleArn"],
            "InputDataConfig": request["InputDataConfig"],
            "OutputDataConfig": request["OutputDataConfig"],
            "ResourceConfig": request["ResourceConfig"],
            "StoppingCondition": request["StoppingCondition"],
            "CreationTime": _now_epoch_ms(),
            "TrainingEndTime": _now_epoch_ms(),
            "LastModifiedTime": _now_epoch_ms(),
            "Tags": {},
        }
        if job.tuning is not None:
            detail["TuningJobArn"] = self._tuning_arn(job.tuning)
        if "FailureReason" in job.result:
            detail["FailureReason"] = job.result["FailureReason"]
        self._announce("SageMaker Training Job State Change", f"training-job/{name}", detail)

    # -- hyperparameter tuning --------------------------------------------------------------------
    def start_tuning_job(self, request: dict[str, Any]) -> bool:
        from datadrop.local.tuning import BayesianTuner

        name = request["HyperParameterTuningJobName"]
        if name in self._tunings:
            return False  # SageMaker: ResourceInUse
        self._tunings[name] = _Tuning(request, BayesianTuner(request["HyperParameterTuningJobConfig"]), created=_now_epoch_ms())
        self._pending.append(("tuning", name))
        try:
            super().start_tuning_job(request)
        except (ClientError, CapacityError):
            del self._tunings[name]
            self._pending.remove(("tuning", name))
            raise
        self.save()
        return True

    def find_tuning_job(self, name: str) -> dict[str, Any] | None:
        description = super().find_tuning_job(name)
        tuning = self._tunings.get(name)
        if description is None or tuning is None:
            return description
        return {**description, **self._tuning_state(name, tuning)}

    def tuning_jobs(self) -> list[str]:
        return list(self._tunings)

    def _advance_tuning(self, name: str) -> None:
        """Launch training jobs while the tuning job has free parallel slots and budget; end it
        when the budget is spent and the last job finished."""
        tuning = self._tunings[name]
        if tuning.status != "InProgress":
            return
        limits = tuning.request["HyperParameterTuningJobConfig"]["ResourceLimits"]
        running = [child for child in tuning.children if self._jobs[("training", child)].status == "InProgress"]
        while len(running) < int(limits["MaxParallelTrainingJobs"]) and len(tuning.children) < int(
            limits["MaxNumberOfTrainingJobs"]
        ):
            running.append(self._launch_tuning_training_job(name, tuning))
        if not running:
            tuning.status = "Completed"
            best = tuning.tuner.best()
            self._say(
                f"tuning job {name}: Completed, {len(tuning.children)} training jobs" + (f", best {best[0]}" if best else "")
            )
            self._announce("SageMaker HyperParameter Tuning Job State Change", f"hyper-parameter-tuning-job/{name}", {
                "HyperParameterTuningJobName": name,
                "HyperParameterTuningJobArn": self._tuning_arn(name),
                "HyperParameterTuningJobConfig": tuning.request["HyperParameterTuningJobConfig"],
                "TrainingJobDefinition": tuning.request["TrainingJobDefinition"],
                "CreationTime": tuning.created,
                "HyperParameterTuningEndTime": _now_epoch_ms(),
                "LastModifiedTime": _now_epoch_ms(),
                **self._tuning_state(name, tuning),
                "Tags": {},
            })  # fmt: skip

    def _launch_tuning_training_job(self, name: str, tuning: _Tuning) -> str:
        """One training job of the tuning job, named and parameterised as SageMaker does it."""
        sequence = len(tuning.children) + 1
        child = f"{name}-{sequence:03d}-{hashlib.sha256(f'{name}/{sequence}'.encode()).hexdigest()[:8]}"
        definition = tuning.request["TrainingJobDefinition"]
        objective = tuning.request["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
        request = {
            "TrainingJobName": child,
            "AlgorithmSpecification": definition["AlgorithmSpecification"],
            "RoleArn": definition["RoleArn"],
            "HyperParameters": {
                **definition.get("StaticHyperParameters", {}),
                **tuning.tuner.ask(child),
                "_tuning_objective_metric": objective,
            },
            "InputDataConfig": definition["InputDataConfig"],
            "OutputDataConfig": definition["OutputDataConfig"],
            "ResourceConfig": definition["ResourceConfig"],
            "StoppingCondition": definition["StoppingCondition"],
            "Tags": tuning.request.get("Tags", []),
        }
        # SageMaker creates it itself (as the service, with the job definition's role).
        self._submit("training", child, request, lambda job_request: SageMakerCompute.start_training_job(self, job_request))
        self._jobs[("training", child)].tuning = name
        tuning.children.append(child)
        tried = ", ".join(f"{key}={value}" for key, value in request["HyperParameters"].items() if key in tuning.tuner.space)
        self._say(f"tuning job {name}: training job {sequence} tries {tried}")
        return child

    def _tuning_state(self, name: str, tuning: _Tuning) -> dict[str, Any]:
        statuses = [self._jobs[("training", child)].status for child in tuning.children]
        best = tuning.tuner.best()
        state: dict[str, Any] = {
            "HyperParameterTuningJobStatus": tuning.status,
            "TrainingJobStatusCounters": {
                "Completed": statuses.count("Completed"),
                "InProgress": statuses.count("InProgress"),
                "RetryableError": 0,
                "NonRetryableError": statuses.count("Failed"),
                "Stopped": statuses.count("Stopped"),
            },
            "ObjectiveStatusCounters": {
                "Succeeded": len(tuning.tuner.scores),
                "Pending": statuses.count("InProgress"),
                "Failed": len(statuses) - len(tuning.tuner.scores) - statuses.count("InProgress"),
            },
        }
        if best is not None:
            state["BestTrainingJob"] = self._training_summary(best[0], name)
        return state

    def _training_summary(self, child: str, name: str) -> dict[str, Any]:
        """A HyperParameterTrainingJobSummary, as DescribeHyperParameterTuningJob and
        ListTrainingJobsForHyperParameterTuningJob give them."""
        job = self._jobs[("training", child)]
        tuning = self._tunings[name]
        tuned = {key: value for key, value in job.request["HyperParameters"].items() if key in tuning.tuner.space}
        summary: dict[str, Any] = {
            "TrainingJobName": child,
            "TrainingJobArn": f"arn:aws:sagemaker:{self.region}:{ACCOUNT}:training-job/{child}",
            "TuningJobName": name,
            "CreationTime": int(tuning.created) / 1000,
            "TrainingJobStatus": job.status,
            "TunedHyperParameters": tuned,
            "ObjectiveStatus": "Succeeded"
            if child in tuning.tuner.scores
            else ("Pending" if job.status == "InProgress" else "Failed"),
        }
        if child in tuning.tuner.scores:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "MetricName": tuning.tuner.metric,
                "Value": tuning.tuner.scores[child],
            }
        if "FailureReason" in job.result:
            summary["FailureReason"] = job.result["FailureReason"]
        return summary

    def _answer_list_tuning_training_jobs(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        name = json.loads(params["body"])["HyperParameterTuningJobName"]  # the request as serialized
        tuning = self._tunings.get(name)
        metadata = {"RequestId": "local", "HTTPStatusCode": 200, "HTTPHeaders": {}, "RetryAttempts": 0}
        if tuning is None:
            message = f"Amazon SageMaker can't find a tuning job with name {name}"
            error = {
                "Error": {"Code": "ResourceNotFound", "Message": message},
                "ResponseMetadata": {**metadata, "HTTPStatusCode": 400},
            }
            return AWSResponse("local", 400, HTTPHeaders(), MockRawResponse(b"")), error
        summaries = []
        for child in tuning.children:
            summary = self._training_summary(child, name)
            summaries.append({**summary, "CreationTime": datetime.fromtimestamp(summary["CreationTime"], UTC)})
        return AWSResponse("local", 200, HTTPHeaders(), MockRawResponse(b"")), {
            "TrainingJobSummaries": summaries,
            "ResponseMetadata": metadata,
        }

    def _tuning_arn(self, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{ACCOUNT}:hyper-parameter-tuning-job/{name}"

    # -- models and endpoints -------------------------------------------------------------------
    def create_model(self, request: dict[str, Any]) -> bool:
        if request["ModelName"] in self._models:
            return False  # SageMaker: "Cannot create already existing model"
        super().create_model(request)
        self._models[request["ModelName"]] = request
        self.save()
        return True

    def create_endpoint_config(self, request: dict[str, Any]) -> bool:
        if request["EndpointConfigName"] in self._endpoint_configs:
            return False
        super().create_endpoint_config(request)
        self._endpoint_configs[request["EndpointConfigName"]] = request
        self.save()
        return True

    def create_endpoint(self, request: dict[str, Any]) -> bool:
        """Creating, then InService once the model's server answers /ping; Failed (with SageMaker's
        kind of FailureReason) when the model does not load."""
        name = request["EndpointName"]
        if name in self._endpoints or name in self._failed_endpoints:
            return False
        super().create_endpoint(request)
        config_name = request["EndpointConfigName"]
        with as_function(SAGEMAKER_ROLE):
            self._announce_endpoint(name, config_name, "CREATING")
            try:
                server = LocalEndpoint(self._endpoint_model(name, config_name))
                server.start()
            except Exception as error:  # noqa: BLE001 - whatever the container start-up raises fails the endpoint
                reason = f"The primary container for production variant AllTraffic did not pass the ping health check: {error}"
                self._failed_endpoints[name] = (config_name, reason[:1024])
                self.save()
                self._say(f"endpoint {name}: Failed: {reason}")
                self._announce_endpoint(name, config_name, "FAILED", reason[:1024])
                return True
            self._endpoints[name] = (config_name, server)
            self.save()
            self._say(f"endpoint {name}: serving at {server.url}")
            self._announce_endpoint(name, config_name, "IN_SERVICE")
        return True

    def update_endpoint(self, request: dict[str, Any]) -> None:
        """Blue/green, as SageMaker does it: the new model's server starts beside the old one and
        takes the traffic once it answers /ping; the old one stops after. A model that does not
        load or answer is rolled back: InService on the old config, with a FailureReason.
        (moto has no UpdateEndpoint; the request was validated by botocore when it was built.)
        Traffic moves all at once: the DeploymentConfig's canary and linear steps, waits and
        alarms are SageMaker's."""
        name, config_name = request["EndpointName"], request["EndpointConfigName"]
        if name not in self._endpoints:
            status = "Failed" if name in self._failed_endpoints else None
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": f"Cannot update endpoint {name}: it is {status}"}}
                if status
                else {"Error": {"Code": "ValidationException", "Message": f"Could not find endpoint {name}."}},
                "UpdateEndpoint",
            )
        old_config, server = self._endpoints[name]
        self._update_failures.pop(name, None)
        with as_function(SAGEMAKER_ROLE):
            self._announce_endpoint(name, old_config, "UPDATING")
            try:
                server.swap(self._endpoint_model(name, config_name))
            except Exception as error:  # noqa: BLE001 - the new fleet failed: SageMaker rolls back
                reason = f"Failed to update endpoint {name} to {config_name}; rolled back to {old_config}: {error}"[:1024]
                self._update_failures[name] = reason
                self.save()
                self._say(f"endpoint {name}: update rolled back: {reason}")
                self._announce_endpoint(name, old_config, "IN_SERVICE", reason)
                return
            self._endpoints[name] = (config_name, server)
            self.save()
            self._say(f"endpoint {name}: {config_name} serves at {server.url} (blue/green: the old model stopped after)")
            self._announce_endpoint(name, config_name, "IN_SERVICE")

    def delete_endpoint(self, name: str) -> bool:
        served = self._endpoints.pop(name, None)
        failed = self._failed_endpoints.pop(name, None)
        if served is None and failed is None:
            return False
        if served is not None:
            served[1].stop()
        self._update_failures.pop(name, None)
        super().delete_endpoint(name)
        self.save()
        self._say(f"endpoint {name}: deleted")
        return True

    def describe_endpoint(self, name: str) -> dict[str, Any] | None:
        if name in self._failed_endpoints:
            config_name, reason = self._failed_endpoints[name]
            description = super().describe_endpoint(name) or {}
            return {**description, "EndpointConfigName": config_name, "EndpointStatus": "Failed", "FailureReason": reason}
        if name not in self._endpoints:
            return None
        description = super().describe_endpoint(name) or {}
        description["EndpointConfigName"] = self._endpoints[name][0]
        description["EndpointStatus"] = "InService"
        description.pop("FailureReason", None)
        if name in self._update_failures:
            description["FailureReason"] = self._update_failures[name]
        return description

    def invocation_url(self, endpoint_name: str) -> str:
        return self._endpoints[endpoint_name][1].invocations_url

    def endpoint_names(self) -> list[str]:
        return list(self._endpoints)

    def endpoint_url(self, endpoint_name: str) -> str | None:
        served = self._endpoints.get(endpoint_name)
        return served[1].url if served else None

    def stop(self) -> None:
        self.save()
        for _, server in self._endpoints.values():
            server.stop()
        self._endpoints.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _endpoint_model(self, endpoint: str, config_name: str) -> ModelFiles:
        config = self._endpoint_configs[config_name]
        model_name = config["ProductionVariants"][0]["ModelName"]
        return self._materialise_model(model_name, self.workdir / "endpoints" / endpoint / config_name)

    def _announce_endpoint(self, name: str, config_name: str, status: str, failure_reason: str | None = None) -> None:
        detail: dict[str, Any] = {
            "EndpointName": name,
            "EndpointArn": f"arn:aws:sagemaker:{self.region}:{ACCOUNT}:endpoint/{name}",
            "EndpointConfigName": config_name,
            "ProductionVariants": [{"DesiredWeight": 1.0, "DesiredInstanceCount": 1.0}],
            "EndpointStatus": status,
            "CreationTime": float(_now_epoch_ms()),
            "LastModifiedTime": float(_now_epoch_ms()),
            "Tags": {},
        }
        if failure_reason is not None:
            detail["FailureReason"] = failure_reason
        self._announce("SageMaker Endpoint State Change", f"endpoint/{name}", detail)

    # -- helpers ----------------------------------------------------------------------------------
    def _materialise_model(self, model_name: str, root: Path) -> ModelFiles:
        """Unpack each container's model.tar.gz, and the inference script's sourcedir where a
        container runs it, as the containers would. The algorithm container of a pipeline is
        played by the twin of the algorithm its preprocessing stage names."""
        request = self._models[model_name]
        containers = request.get("Containers") or [request["PrimaryContainer"]]
        algorithm = next(
            (c["Environment"][ALGORITHM_VARIABLE] for c in containers if ALGORITHM_VARIABLE in c.get("Environment", {})), None
        )
        stages: list[ScriptStage | TwinStage] = []
        for index, container in enumerate(containers):
            environment = dict(container.get("Environment", {}))
            model_dir, code_dir = root / f"model-{index}", root / f"code-{index}"
            for directory in (model_dir, code_dir):
                shutil.rmtree(directory, ignore_errors=True)
            model_dir.mkdir(parents=True)
            _untar(self._download(container["ModelDataUrl"]), model_dir)
            if STAGE_VARIABLE in environment or len(containers) == 1:  # datadrop's script: a stage, or XGBoost's script mode
                code_dir.mkdir(parents=True)
                _untar(self._download(environment["SAGEMAKER_SUBMIT_DIRECTORY"]), code_dir)
                stages.append(ScriptStage(code_dir, model_dir, environment))
            elif algorithm is not None:
                stages.append(TwinStage(algorithm, model_dir, environment))
            else:
                raise ValueError(
                    f"model {model_name}: container {container['Image']} runs no datadrop script and names no algorithm"
                )
        return ModelFiles(tuple(stages))

    def _announce(self, detail_type: str, resource: str, detail: dict[str, Any]) -> None:
        response = self.events.put_events(
            Entries=[
                {
                    "Source": "aws.sagemaker",
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail, default=str),
                    "Resources": [f"arn:aws:sagemaker:{self.region}:{ACCOUNT}:{resource}"],
                }
            ]
        )
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"could not put {detail_type}: {response['Entries']}")

    def _download(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def _download_prefix(self, uri: str, directory: Path) -> list[Path]:
        bucket, prefix = split_s3_uri(uri)
        directory.mkdir(parents=True, exist_ok=True)
        files: list[Path] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["Key"].endswith("/"):
                    continue
                target = directory / item["Key"][len(prefix) :].lstrip("/")
                if target == directory:  # the URI named a single object
                    target = directory / item["Key"].rsplit("/", 1)[-1]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self.s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
                files.append(target)
        return files

    def _upload(self, uri: str, body: bytes) -> None:
        bucket, key = split_s3_uri(uri)
        self.s3.put_object(Bucket=bucket, Key=key, Body=body)


JOURNAL_FORMAT = 1


def training_algorithm(request: dict[str, Any]) -> str:
    """Which twin trains a job: datadrop tags every training job with its algorithm (the image
    alone cannot tell: the JumpStart algorithms share framework images)."""
    tags = {tag["Key"]: tag["Value"] for tag in request.get("Tags", [])}
    return tags.get(ALGORITHM_TAG, algorithms.DEFAULT_ALGORITHM)


class JournalError(Exception):
    """The local SageMaker's journal exists and cannot be read."""


def _tar_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(directory.iterdir()):
            archive.add(path, arcname=path.name)
    return buffer.getvalue()


def _untar(body: bytes, directory: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        archive.extractall(directory, filter="data")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _now_epoch_ms() -> str:
    return str(int(datetime.now(UTC).timestamp() * 1000))
