"""Pickling what the local stack keeps across restarts (moto's backends, the local SageMaker's jobs)."""

from __future__ import annotations

import copyreg
import threading


def allow_locks() -> None:
    """Locks and conditions pickle as fresh ones: moto's SQS queues and Optuna's in-memory studies
    hold some, and a restored object needs its own, unheld, with nobody waiting on it. (Pickling a
    condition as it is would also race with the long polls that wait on it: each wait adds itself
    to the condition's waiters while the snapshot reads them.)"""
    copyreg.pickle(type(threading.RLock()), lambda _lock: (threading.RLock, ()))
    copyreg.pickle(type(threading.Lock()), lambda _lock: (threading.Lock, ()))
    copyreg.pickle(threading.Condition, lambda _condition: (threading.Condition, ()))
