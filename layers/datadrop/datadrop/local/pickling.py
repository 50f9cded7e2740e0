"""Pickling what the local stack keeps across restarts (moto's backends, the local SageMaker's jobs)."""

from __future__ import annotations

import copyreg
import threading


def allow_locks() -> None:
    """Locks pickle as fresh locks: moto's SQS queues and Optuna's in-memory studies hold some, and a
    restored object needs its own, unheld."""
    copyreg.pickle(type(threading.RLock()), lambda _lock: (threading.RLock, ()))
    copyreg.pickle(type(threading.Lock()), lambda _lock: (threading.Lock, ()))
