"""Ports on 127.0.0.1, for the local stack's servers (its AWS endpoint and its model endpoints)."""

from __future__ import annotations

import socket


def is_free(port: int) -> bool:
    """Whether a server could bind `port` on 127.0.0.1 now (with SO_REUSEADDR, as the servers bind:
    a connection in TIME_WAIT is no obstacle)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
