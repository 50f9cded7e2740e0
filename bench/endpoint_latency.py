#!/usr/bin/env python3
"""Latency of the local endpoint: one-row requests over a kept-alive connection, against a bare
stdlib HTTP server answering a constant on the same machine, in the same run.

The local stack deploys the penguins example (in-process moto, as `datadrop run` does), then this
script POSTs the example's header and first row as text/csv `--requests` times to
/invocations (the first 10% are warm-up and dropped) and reports the median and 90th percentile.
The baseline is the floor of HTTP on this machine: a `http.server` with the same protocol
(HTTP/1.1, Content-Length, TCP_NODELAY) that answers "Adelie" without a model.

Usage: .venv/bin/python bench/endpoint_latency.py [--requests 500] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from machine import describe_machine

ROW = (
    "species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year\n"
    "Adelie,Torgersen,39.1,18.7,181,3750,male,2007\n"
)


def measure(host: str, port: int, path: str, requests: int) -> list[float]:
    connection = http.client.HTTPConnection(host, port)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        connection.request("POST", path, body=ROW, headers={"Content-Type": "text/csv", "Accept": "text/csv"})
        response = connection.getresponse()
        response.read()
        times.append(time.perf_counter() - started)
    connection.close()
    return times[requests // 10 :]


class _Constant(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b"Adelie\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"median_ms": statistics.median(ordered) * 1000, "p90_ms": ordered[int(len(ordered) * 0.9)] * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per server (500)")
    parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON")
    args = parser.parse_args()
    from datadrop.local.runtime import LocalStack
    from moto import mock_aws

    baseline_server = ThreadingHTTPServer(("127.0.0.1", 0), _Constant)
    threading.Thread(target=baseline_server.serve_forever, daemon=True).start()
    with mock_aws(), LocalStack(template_path=ROOT / "template.yaml") as stack:
        stack.put_config("penguins", (ROOT / "examples" / "penguins" / "species.yaml").read_text())
        stack.upload(ROOT / "examples" / "penguins" / "penguins.csv", "penguins")
        stack.drain()
        endpoint = stack.compute._endpoints["datadrop--penguins"][1]
        results = {
            "datadrop endpoint": summary(measure(endpoint.host, endpoint.port, "/invocations", args.requests)),
            "bare http.server": summary(measure("127.0.0.1", baseline_server.server_address[1], "/", args.requests)),
        }
    baseline_server.shutdown()
    if args.json:
        print(json.dumps({"machine": describe_machine(None, sys.executable), "results": results}, indent=2))
        return 0
    print(f"{args.requests} one-row requests each, kept-alive connection, first 10% dropped")
    for name, numbers in results.items():
        print(f"{name:18s} median {numbers['median_ms']:6.2f} ms   p90 {numbers['p90_ms']:6.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
