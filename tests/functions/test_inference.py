"""TritonInferenceClient when Triton is down, stopped, resetting connections or lacks the model.

A Triton that answers normally is tested in tests/triton; here the servers
are the faults: a dead port, a socket that never answers (a stopped
process), and a small scripted KServe v2 server that resets connections.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from functions.errors import ModelNotReady
from functions.inference import InferenceClient, TritonInferenceClient
from kpipe.core.settings import InferenceSettings

X = {"x": np.zeros((1, 3, 32, 32), dtype=np.float32)}


class _ScriptedTriton(ThreadingHTTPServer):
    """Answers Triton's ready and infer calls; each infer takes the next scripted action."""

    daemon_threads = True

    def __init__(self, port: int, ready: bool, infer_script: list[str]) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.ready = ready
        self.infer_script = infer_script
        self.probes = 0
        self.infers = 0
        self.lock = threading.Lock()

    def next_infer(self) -> str:
        with self.lock:
            action = self.infer_script[min(self.infers, len(self.infer_script) - 1)]
            self.infers += 1
        return action


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ScriptedTriton

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.probes += 1
        self._answer(200 if self.server.ready else 400, b"")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        if self.server.next_infer() == "reset":
            # SO_LINGER 0: close with a RST, as a Triton that restarts under the client does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        body = {
            "model_name": "m",
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [1.5, 2.5]}],
        }
        self._answer(200, json.dumps(body).encode())

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def scripted_triton(
    free_port: Callable[[], int],
) -> Iterator[Callable[..., _ScriptedTriton]]:
    servers: list[_ScriptedTriton] = []

    def start(ready: bool = True, infer_script: tuple[str, ...] = ("ok",)) -> _ScriptedTriton:
        server = _ScriptedTriton(free_port(), ready, list(infer_script))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _url(server: _ScriptedTriton) -> str:
    return f"127.0.0.1:{server.server_address[1]}"


def test_triton_down_fails_at_once_as_retryable(free_port: Callable[[], int]) -> None:
    url = f"127.0.0.1:{free_port()}"  # nothing listens there
    waits: list[float] = []
    with (
        TritonInferenceClient(url, sleep=waits.append) as client,
        pytest.raises(
            ModelNotReady, match=f"model text_detection not ready on Triton at {url}: unreachable"
        ) as caught,
    ):
        client.infer("text_detection", X, ["y"])
    assert caught.value.retryable
    assert waits == []  # a refused connection is not waited on: the broker redelivers


def test_a_stopped_triton_is_given_up_on_after_the_probe_timeout() -> None:
    # A listening socket nobody accepts on: the kernel completes the TCP
    # handshake, as for a SIGSTOPped Triton, but no answer ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"127.0.0.1:{silent.getsockname()[1]}"
        with (
            TritonInferenceClient(url, timeout_s=600.0, probe_timeout_s=0.2) as client,
            pytest.raises(ModelNotReady, match=r"unreachable: no answer within 0\.2 s"),
        ):
            client.infer("text_detection", X, ["y"])


def test_error_carries_model_and_url(free_port: Callable[[], int]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        TritonInferenceClient(url) as client,
        pytest.raises(ModelNotReady) as caught,
    ):
        client.infer("yolov8n", X, ["output0"])
    assert (caught.value.model, caught.value.url) == ("yolov8n", url)
    assert caught.value.retryable


def test_a_model_that_is_not_loaded_fails_after_one_probe(
    scripted_triton: Callable[..., _ScriptedTriton],
) -> None:
    triton = scripted_triton(ready=False)
    waits: list[float] = []
    with (
        TritonInferenceClient(_url(triton), sleep=waits.append) as client,
        pytest.raises(ModelNotReady, match=r"model m not ready .*: the model is not loaded"),
    ):
        client.infer("m", X, ["y"])
    assert (triton.probes, triton.infers, waits) == (1, 0, [])


def test_a_reset_connection_is_tried_again(
    scripted_triton: Callable[..., _ScriptedTriton], caplog: pytest.LogCaptureFixture
) -> None:
    triton = scripted_triton(infer_script=("reset", "ok"))
    waits: list[float] = []
    with TritonInferenceClient(_url(triton), sleep=waits.append) as client:
        out = client.infer("m", X, ["y"])
    np.testing.assert_array_equal(out["y"], np.array([[1.5, 2.5]], dtype=np.float32))
    assert triton.infers == 2
    assert len(waits) == 1
    assert "m on Triton at" in caplog.text
    assert "attempt 1 failed" in caplog.text


def test_resets_that_persist_end_as_model_not_ready(
    scripted_triton: Callable[..., _ScriptedTriton],
) -> None:
    triton = scripted_triton(infer_script=("reset",))
    waits: list[float] = []
    with (
        TritonInferenceClient(_url(triton), sleep=waits.append) as client,
        pytest.raises(ModelNotReady, match=r"connection (reset|closed)") as caught,
    ):
        client.infer("m", X, ["y"])
    assert caught.value.retryable
    assert (triton.infers, len(waits)) == (3, 2)


def test_from_settings_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, free_port: Callable[[], int]
) -> None:
    url = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("TRITON_URL", url)
    monkeypatch.setenv("TRITON_TIMEOUT_S", "12")
    monkeypatch.setenv("TRITON_PROBE_TIMEOUT_S", "0.25")
    with TritonInferenceClient.from_settings() as client:
        assert (client.url, client.timeout_s, client.probe_timeout_s) == (url, 12.0, 0.25)


def test_settings_object_is_used(free_port: Callable[[], int]) -> None:
    url = f"127.0.0.1:{free_port()}"
    settings = InferenceSettings.model_validate({"TRITON_URL": url, "TRITON_PROBE_TIMEOUT_S": 0.5})
    with TritonInferenceClient.from_settings(settings) as client:
        assert (client.url, client.probe_timeout_s) == (url, 0.5)


def test_is_an_inference_client(free_port: Callable[[], int]) -> None:
    with TritonInferenceClient(f"127.0.0.1:{free_port()}") as client:
        as_protocol: InferenceClient = client
        assert as_protocol.url == client.url
