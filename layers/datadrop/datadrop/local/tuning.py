"""The local SageMaker's hyperparameter tuning: a real sequential Bayesian optimiser.

SageMaker's Bayesian strategy is not public code; its honest local twin is Optuna's TPE (a
sequential model-based optimiser), driven by the same request: the ParameterRanges, the
objective (metric and direction), the RandomSeed and the job budget. Each training job the
tuning job launches asks TPE for its values, given how every finished job scored on the
objective; jobs still running count as bad guesses (`constant_liar`), so parallel jobs do not
all try the same spot. Only the local runtime imports this (Optuna is not in the Lambda layer).
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

optuna.logging.set_verbosity(optuna.logging.WARNING)


def startup_trials(max_jobs: int) -> int:
    """Random points before the model takes over: a quarter of the budget, 2 to 10."""
    return max(2, min(10, max_jobs // 4))


def distributions(ranges: dict[str, list[dict[str, Any]]]) -> dict[str, BaseDistribution]:
    """A tuning job's ParameterRanges as Optuna distributions."""
    space: dict[str, BaseDistribution] = {}
    for spec in ranges.get("IntegerParameterRanges", []):
        space[spec["Name"]] = IntDistribution(
            int(spec["MinValue"]), int(spec["MaxValue"]), log=spec.get("ScalingType") == "Logarithmic"
        )
    for spec in ranges.get("ContinuousParameterRanges", []):
        space[spec["Name"]] = FloatDistribution(
            float(spec["MinValue"]), float(spec["MaxValue"]), log=spec.get("ScalingType") == "Logarithmic"
        )
    for spec in ranges.get("CategoricalParameterRanges", []):
        space[spec["Name"]] = CategoricalDistribution(list(spec["Values"]))
    return space


def _as_hyperparameter(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class BayesianTuner:
    """Ask for a training job's hyperparameters; tell how the job scored."""

    def __init__(self, config: dict[str, Any]) -> None:
        objective = config["HyperParameterTuningJobObjective"]
        self.metric: str = objective["MetricName"]
        self.minimise = objective["Type"] == "Minimize"
        self.space = distributions(config.get("ParameterRanges", {}))
        sampler = optuna.samplers.TPESampler(
            seed=int(config.get("RandomSeed", 0)),
            n_startup_trials=startup_trials(int(config["ResourceLimits"]["MaxNumberOfTrainingJobs"])),
            constant_liar=True,
        )
        self.study = optuna.create_study(direction="minimize" if self.minimise else "maximize", sampler=sampler)
        self._trials: dict[str, optuna.trial.Trial] = {}
        self.scores: dict[str, float] = {}

    def ask(self, job: str) -> dict[str, str]:
        trial = self.study.ask(self.space)
        self._trials[job] = trial
        return {name: _as_hyperparameter(value) for name, value in trial.params.items()}

    def tell(self, job: str, metrics: dict[str, float]) -> None:
        """A finished job: its objective metric, or a failure when it has none."""
        trial = self._trials.pop(job)
        if self.metric in metrics:
            self.scores[job] = metrics[self.metric]
            self.study.tell(trial, metrics[self.metric])
        else:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def best(self) -> tuple[str, float] | None:
        if not self.scores:
            return None
        pick = min if self.minimise else max
        job = pick(self.scores, key=lambda name: self.scores[name])
        return job, self.scores[job]
