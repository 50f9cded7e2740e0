"""Costs moto pays on every request and every event, cached where the answer cannot change while
it runs. Used by the local stack's server and by the in-process stack (`datadrop run --isolated`,
the tests); nothing here changes what moto answers."""

from __future__ import annotations

import functools

_done = False


def speed_up_moto() -> None:
    """Cache two things moto recomputes (idempotent):
    - the list of its own service modules, read from disk to route each server request (about 1 ms
      a request);
    - the JSONPath expressions of an EventBridge target's input paths, parsed again with a fresh
      parser for each event delivered (about 1 ms each, eight per event: most of a PutEvents)."""
    global _done
    if _done:
        return
    import jsonpath_ng.ext
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=1024)(jsonpath_ng.ext.parse)
    _done = True
