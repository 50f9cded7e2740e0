"""The local twin of a SageMaker real-time endpoint: a real HTTP server answering /ping and
/invocations, with blue/green model swaps behind one port."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from datadrop.local.model import ModelFiles, load_model

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker real-time InvokeEndpoint limit

__all__ = ["HealthCheckFailed", "LocalEndpoint"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that hangs up mid-response is not worth a traceback on stderr."""


# What the SageMaker XGBoost container answers when the inference script raises: in script mode
# (one model) it serves with sagemaker-containers' Flask worker, whose Transformer wraps every
# exception of input_fn, predict_fn and output_fn in a ClientError that nothing handles, so Flask
# answers with its generic 500 page (the reason goes to the endpoint's CloudWatch log). The local
# endpoint answers the same, and logs the reason (logger "datadrop.local.endpoint").
CONTAINER_ERROR_STATUS = HTTPStatus.INTERNAL_SERVER_ERROR
CONTAINER_ERROR_BODY = (
    b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n"
    b"<p>The server encountered an internal error and was unable to complete your request. Either the server is "
    b"overloaded or there is an error in the application.</p>\n"
)
CONTAINER_ERROR_TYPE = "text/html; charset=utf-8"
HEALTH_CHECK_SECONDS = 30.0
endpoint_log = logging.getLogger("datadrop.local.endpoint")


class HealthCheckFailed(RuntimeError):
    """A new model's server did not answer /ping with 200: traffic stays where it was."""


class _ModelServer:
    """One model served on a port of its own (one instance of the endpoint's fleet): /ping and
    /invocations, as the inference container answers them."""

    def __init__(self, files: ModelFiles, host: str, max_payload_bytes: int) -> None:
        self.files = files
        self.host = host
        self.max_payload_bytes = max_payload_bytes
        self._served: Any = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self, port: int = 0) -> Self:
        """Load the model (like container start-up: a broken model fails here) and serve."""
        self._served = load_model(self.files)
        self._server, self._thread = _serve(self.host, port, _handler_class(self.invoke, lambda: True, self.max_payload_bytes))
        self.port = int(self._server.server_address[1])
        return self

    def stop(self) -> None:
        _stop_serving(self._server, self._thread)
        self._server, self._thread = None, None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def healthy(self, timeout: float = HEALTH_CHECK_SECONDS) -> bool:
        """GET /ping answers 200 (as SageMaker checks a new instance before it takes traffic)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=5) as response:
                    if response.status == HTTPStatus.OK:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[int, bytes, str]:
        """One /invocations call: (status, body, content type). Whatever the script raises is a 500
        with the container's body, as in SageMaker."""
        if self._served is None:
            raise RuntimeError("endpoint has no model")
        if not accept or accept.strip() in ("*/*", ""):
            accept = "text/csv"  # SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT (datadrop.serving.container_environment)
        try:
            payload, out_type = self._served.answer(body, content_type, accept)
        except Exception as exc:  # noqa: BLE001 - the container answers 500 to anything the script raises
            endpoint_log.warning("the inference script failed (the client sees HTTP 500): %s: %s", type(exc).__name__, exc)
            return CONTAINER_ERROR_STATUS, CONTAINER_ERROR_BODY, CONTAINER_ERROR_TYPE
        return HTTPStatus.OK, payload, out_type


class LocalEndpoint:
    """A real HTTP server answering /ping and /invocations like a SageMaker endpoint, on one port
    for its whole life. Behind it, each model is served by a server of its own: a new model
    (`swap`) is started and health-checked (/ping) before any request goes to it, and the old one
    stops only after that, so clients see no failed request during an update (blue/green)."""

    def __init__(
        self, files: ModelFiles, host: str = "127.0.0.1", port: int = 0, max_payload_bytes: int = MAX_PAYLOAD_BYTES
    ) -> None:
        self.host = host
        self.port = port
        self.max_payload_bytes = max_payload_bytes
        self._files = files
        self._instance: _ModelServer | None = None
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> Self:
        """Start the model's server, check its health, then serve on the endpoint's port."""
        if self._server is not None:
            return self
        self._instance = self._started(self._files)
        try:
            handler = _handler_class(self.invoke, self._healthy, self.max_payload_bytes)
            self._server, self._thread = _serve(self.host, self.port, handler)
        except BaseException:
            self._instance.stop()
            raise
        self.port = int(self._server.server_address[1])
        return self

    def stop(self) -> None:
        """Stop serving and release the ports."""
        _stop_serving(self._server, self._thread)
        self._server, self._thread = None, None
        instance, self._instance = self._instance, None
        if instance is not None:
            instance.stop()

    def swap(self, files: ModelFiles) -> None:
        """Blue/green: serve another model once its own server is up and answers /ping; then stop
        the old one. If the new model fails to load or to answer, the current one keeps serving."""
        green = self._started(files)
        with self._lock:
            blue, self._instance = self._instance, green
            self._files = files
        if blue is not None:
            blue.stop()  # requests it was answering finish: they hold their model, not its socket

    def _started(self, files: ModelFiles) -> _ModelServer:
        instance = _ModelServer(files, self.host, self.max_payload_bytes).start()
        if not instance.healthy():
            instance.stop()
            raise HealthCheckFailed(f"the model server for {files.description} did not answer /ping")
        return instance

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("endpoint is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def invocations_url(self) -> str:
        return f"{self.url}/invocations"

    @property
    def model_url(self) -> str:
        """The server of the model serving now (it changes at every swap; the endpoint's URL does not)."""
        return self._current().url

    def _current(self) -> _ModelServer:
        with self._lock:
            instance = self._instance
        if instance is None:
            raise RuntimeError("endpoint has no model")
        return instance

    def _healthy(self) -> bool:
        with self._lock:
            return self._instance is not None

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[int, bytes, str]:
        """One /invocations call, answered by the model serving now."""
        return self._current().invoke(body, content_type, accept)


def _serve(host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> tuple[_Server, threading.Thread]:
    server = _Server((host, port), handler)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name=f"datadrop-endpoint-{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    return server, thread


def _stop_serving(server: _Server | None, thread: threading.Thread | None) -> None:
    """Stop what `_serve` started (either may already be gone) and release its port."""
    if server is not None:
        server.shutdown()
        server.server_close()
    if thread is not None:
        thread.join(timeout=5)


def _handler_class(
    invoke: Callable[[bytes, str | None, str | None], tuple[int, bytes, str]],
    healthy: Callable[[], bool],
    max_payload_bytes: int,
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "datadrop-local-endpoint"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: no per-request stderr lines

        def setup(self) -> None:
            super().setup()
            # Headers and body are separate writes: with Nagle's algorithm on, the body waits for
            # the client's delayed ACK of the headers (about 40 ms on Linux) on every response.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _send(self, status: int, body: bytes = b"", content_type: str | None = None) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] == "/ping":
                self._send(HTTPStatus.OK if healthy() else HTTPStatus.SERVICE_UNAVAILABLE)
            else:
                self._send(HTTPStatus.NOT_FOUND, _error_body(404, f"no route {self.path}"), "application/json")

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/invocations":
                self._drain()
                self._send(HTTPStatus.NOT_FOUND, _error_body(404, f"no route {self.path}"), "application/json")
                return
            length = self.headers.get("Content-Length")
            if length is None:
                self.close_connection = True
                self._send(HTTPStatus.LENGTH_REQUIRED, _error_body(411, "Content-Length required"), "application/json")
                return
            try:
                size = int(length)
            except ValueError:
                self.close_connection = True
                self._send(HTTPStatus.BAD_REQUEST, _error_body(400, "bad Content-Length"), "application/json")
                return
            if size > max_payload_bytes:
                self.close_connection = True
                self._send(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    _error_body(413, f"payload of {size} bytes exceeds {max_payload_bytes}"),
                    "application/json",
                )
                return
            body = self.rfile.read(size)
            status, payload, out_type = invoke(body, self.headers.get("Content-Type"), self.headers.get("Accept"))
            self._send(status, payload, out_type)

        def _drain(self) -> None:
            try:
                n = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                n = 0
            if 0 < n <= max_payload_bytes:
                self.rfile.read(n)
            else:
                self.close_connection = True

    return Handler


def _error_body(status: int, message: str) -> bytes:
    return json.dumps({"status": int(status), "message": message}).encode("utf-8")
