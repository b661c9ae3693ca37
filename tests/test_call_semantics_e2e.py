"""Call semantics across processes: interceptors (order, short-circuit, item hooks, the
shipped logging and token-auth ones), response headers and trailers, cancelling a unary
call from another thread, and deadline and metadata propagation through a handler's
onward calls. Servers run in their own processes (tests/e2e/semantics_serve.py)."""

from __future__ import annotations

import importlib
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import E2E, generate_stubs, same_checkout_env, wait_until

from gopherpipe_runtime import (
    CancelledError,
    CancelToken,
    PermissionDeniedError,
    RpcError,
    StatusCode,
    UnauthenticatedError,
    health,
    response_metadata,
)
from gopherpipe_runtime.interceptors import (
    CallInfo,
    Interceptor,
    LoggingInterceptor,
    TokenAuthClient,
)


class SemanticsServer:
    def __init__(self, stub_dir: Path, setup: dict[str, Any] | None = None) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(E2E / "semantics_serve.py"),
                str(stub_dir),
                "tcp://127.0.0.1:0",
                json.dumps(setup or {}),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=same_checkout_env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {self.proc.stderr.read()}")  # type: ignore[union-attr]
        self.address = line
        self._stderr: str | None = None

    def stop(self) -> str:
        """Stop the server (idempotent); what it wrote to stderr."""
        assert self.proc.stdin is not None and self.proc.stderr is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()  # semantics_serve.py stops on stdin EOF
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(15)
        if self._stderr is None:
            self._stderr = self.proc.stderr.read()
        return self._stderr


@pytest.fixture(scope="module")
def stub_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = generate_stubs(tmp_path_factory.mktemp("semantics"), "e2e_semantics.py")
    # The stubs, and semantics_impl (for the in-process tracing test).
    sys.path[:0] = [str(folder), str(E2E)]
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        sys.path.remove(str(E2E))


@pytest.fixture(scope="module")
def client_class(stub_dir: Path) -> Any:
    return importlib.import_module("e2e_semantics_client").SemanticsClient


@pytest.fixture
def serve(stub_dir: Path) -> Iterator[Callable[..., SemanticsServer]]:
    started: list[SemanticsServer] = []

    def start(**setup: Any) -> SemanticsServer:
        server = SemanticsServer(stub_dir, setup)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class ClientRecording(Interceptor):
    def __init__(self, name: str, events: list[str]) -> None:
        self.name, self.events = name, events

    def intercept(self, call: CallInfo, proceed: Any) -> Any:
        if call.method == "events":
            return proceed()
        self.events.append(f"{self.name}.intercept {call.method}")
        if call.metadata.get("client-deny") == self.name:
            raise PermissionDeniedError(f"refused by client interceptor {self.name}")
        return proceed()

    def on_end(self, call: CallInfo, code: StatusCode, message: str) -> None:
        if call.method != "events":
            self.events.append(f"{self.name}.end {call.method} {code.name}")

    def on_send(self, call: CallInfo, item: Any) -> None:
        self.events.append(f"{self.name}.send {item}")

    def on_receive(self, call: CallInfo, item: Any) -> None:
        self.events.append(f"{self.name}.receive {item}")


def server_events(client: Any, since: int = 0) -> list[str]:
    return list(client.events())[since:]


def wait_for_event(client: Any, wanted: str) -> None:
    wait_until(lambda: wanted in client.events(), f"server event {wanted!r}")


# -- interceptor order and short-circuit, on all four shapes --------------------------


def call_shape(client: Any, shape: str) -> Any:
    if shape == "unary":
        return client.meta(False)
    if shape == "server_stream":
        return list(client.count(2, False))
    if shape == "client_stream":
        return client.total([1, 2])
    return list(client.echo([1, 2]))


SHAPES = ["unary", "server_stream", "client_stream", "bidi"]
METHOD = {"unary": "meta", "server_stream": "count", "client_stream": "total", "bidi": "echo"}


@pytest.mark.parametrize("shape", SHAPES)
def test_interceptor_order_on_both_sides(serve: Any, client_class: Any, shape: str) -> None:
    server = serve(interceptors=["record:A", "record:B"])
    local: list[str] = []
    interceptors = [ClientRecording("a", local), ClientRecording("b", local)]
    with client_class.dial(server.address, interceptors=interceptors) as client:
        result = call_shape(client, shape)
        method = METHOD[shape]
        # The server's on_end runs after its STATUS is queued: wait for it, bounded.
        wait_for_event(client, f"A.end {method} OK")
        seen = server_events(client)
    assert (
        result
        == {"unary": "ok", "server_stream": [0, 1], "client_stream": 3, "bidi": [1, 2]}[shape]
    )
    intercepts = [e for e in seen if ".intercept" in e or e.startswith("handler")]
    assert intercepts == [f"A.intercept {method}", f"B.intercept {method}", f"handler {method}"]
    ends = [e for e in seen if ".end" in e]
    assert ends == [f"B.end {method} OK", f"A.end {method} OK"]
    client_ends = [e for e in local if ".end" in e]
    assert local[:2] == [f"a.intercept {method}", f"b.intercept {method}"]
    assert client_ends == [f"b.end {method} OK", f"a.end {method} OK"]
    # Items: towards the wire the inner one sees them first; from the wire the outer one.
    if shape in ("server_stream", "bidi"):
        server_sends = [e for e in seen if ".send" in e]
        assert (
            server_sends[:2] == ["B.send 0", "A.send 0"]
            if shape == "server_stream"
            else [
                "B.send 1",
                "A.send 1",
            ]
        )
        client_receives = [e for e in local if ".receive" in e]
        first = 0 if shape == "server_stream" else 1
        assert client_receives[:2] == [f"a.receive {first}", f"b.receive {first}"]
    if shape in ("client_stream", "bidi"):
        client_sends = [e for e in local if ".send" in e]
        assert client_sends[:2] == ["b.send 1", "a.send 1"]
        server_receives = [e for e in seen if ".receive" in e]
        assert server_receives[:2] == ["A.receive 1", "B.receive 1"]


@pytest.mark.parametrize("shape", SHAPES)
def test_server_interceptor_short_circuits(serve: Any, client_class: Any, shape: str) -> None:
    server = serve(interceptors=["record:A", "record:B"])
    with client_class.dial(server.address) as client:
        denied = client.with_options(metadata={"deny": "A"})
        with pytest.raises(PermissionDeniedError, match="denied by A"):
            call_shape(denied, shape)
        method = METHOD[shape]
        wait_for_event(client, f"A.end {method} PERMISSION_DENIED")
        seen = server_events(client)
    assert f"A.intercept {method}" in seen
    assert f"B.intercept {method}" not in seen  # the inner one never ran
    assert f"handler {method}" not in seen  # nor the handler
    assert f"B.end {method} PERMISSION_DENIED" not in seen


@pytest.mark.parametrize("shape", SHAPES)
def test_client_interceptor_short_circuits(serve: Any, client_class: Any, shape: str) -> None:
    server = serve(interceptors=["record:A"])
    local: list[str] = []
    interceptors = [ClientRecording("a", local), ClientRecording("b", local)]
    with client_class.dial(server.address, interceptors=interceptors) as client:
        refused = client.with_options(metadata={"client-deny": "a"})
        with pytest.raises(PermissionDeniedError, match="client interceptor a"):
            call_shape(refused, shape)
        assert server_events(client) == []  # nothing reached the server
    method = METHOD[shape]
    assert local == [f"a.intercept {method}", f"a.end {method} PERMISSION_DENIED"]


# -- the shipped interceptors -----------------------------------------------------------


def test_token_auth_rejects_and_accepts(serve: Any, client_class: Any) -> None:
    server = serve(interceptors=["auth:s3cret"])
    with client_class.dial(server.address) as anonymous:
        with pytest.raises(UnauthenticatedError, match="no bearer token"):
            anonymous.meta(False)
        with pytest.raises(UnauthenticatedError):
            list(anonymous.count(2, False))
    wrong = client_class.dial(server.address, interceptors=[TokenAuthClient("wrong")])
    with wrong, pytest.raises(UnauthenticatedError, match="invalid token"):
        wrong.meta(False)
    with client_class.dial(server.address, interceptors=[TokenAuthClient("s3cret")]) as client:
        assert client.meta(False) == "ok"
        assert list(client.count(3, False)) == [0, 1, 2]
        assert client.total([4, 5]) == 9
        assert client.metadata("authorization") == "Bearer s3cret"
    # Probes carry no credentials: the Health service is exempt by default.
    assert health.check(server.address) == health.SERVING


def test_logging_interceptor_lines(
    serve: Any, client_class: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(interceptors=["log"])
    logger = logging.getLogger("test.client.calls")
    client = client_class.dial(server.address, interceptors=[LoggingInterceptor(logger)])
    with caplog.at_level(logging.INFO, logger="test.client.calls"), client:
        client.meta(False)
        with pytest.raises(RpcError):
            client.meta(True)
        assert list(client.count(2, False)) == [0, 1]
    stderr = server.stop()
    client_lines = [r.getMessage() for r in caplog.records if r.name == "test.client.calls"]
    assert len(client_lines) == 3, client_lines
    assert client_lines[0].startswith(f"client {server.address} Semantics.meta OK ")
    assert client_lines[0].endswith("ms")
    assert " Semantics.meta FAILED_PRECONDITION " in client_lines[1]
    assert client_lines[1].endswith(": asked to fail")
    assert " Semantics.count OK " in client_lines[2]
    server_lines = [line for line in stderr.splitlines() if line.startswith("LOG ")]
    assert len(server_lines) == 3, stderr
    assert server_lines[0].startswith("LOG server 127.0.0.1:") and " Semantics.meta OK " in (
        server_lines[0]
    )
    assert "Semantics.meta FAILED_PRECONDITION" in server_lines[1]
    assert "Semantics.count OK" in server_lines[2]


# -- response headers and trailers --------------------------------------------------------


def test_trailers_on_success_and_error_unary(serve: Any, client_class: Any) -> None:
    server = serve()
    with client_class.dial(server.address) as client:
        with response_metadata() as meta:
            assert client.meta(False) == "ok"
        assert meta.headers == {"h": "unary"}
        assert meta.trailers == {"t": "unary"}
        assert meta.code == StatusCode.OK
        with pytest.raises(RpcError) as failure:
            client.meta(True)
        assert failure.value.code == StatusCode.FAILED_PRECONDITION
        assert failure.value.trailers == {"t": "unary"}
        assert failure.value.headers == {"h": "unary"}


def test_trailers_on_streams(serve: Any, client_class: Any) -> None:
    server = serve()
    with client_class.dial(server.address) as client:
        with response_metadata() as meta:
            items = client.count(3, False)
        assert list(items) == [0, 1, 2]
        assert meta.headers == {"h": "count"}
        assert meta.trailers == {"t": "count"}
        assert meta.code == StatusCode.OK
        failing = client.count(1, True)
        assert failing.recv() == 0
        with pytest.raises(RpcError) as failure:
            failing.recv()
        assert failure.value.code == StatusCode.ABORTED
        assert failure.value.trailers == {"t": "count"}
        assert failure.value.headers == {"h": "count"}
        with response_metadata() as meta:
            assert client.total([1, 2, 3]) == 6
        assert meta.trailers == {"t": "total"}


def test_response_metadata_beyond_client_limit_fails_that_call_only(
    serve: Any, client_class: Any
) -> None:
    server = serve()
    # {"h": "unary"} counts 1 + 5 + 32 = 38 bytes: over a limit of 30.
    with client_class.dial(server.address, max_metadata_size=30) as client:
        with pytest.raises(RpcError) as failure:
            client.meta(False)
        assert failure.value.code == StatusCode.RESOURCE_EXHAUSTED
        assert "max_metadata_size" in failure.value.message
        with pytest.raises(RpcError) as failure:
            list(client.count(2, False))
        assert failure.value.code == StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(RpcError) as failure:
            client.total([1])  # its trailers, {"t": "total"}, count 38 too
        assert failure.value.code == StatusCode.RESOURCE_EXHAUSTED
        assert client.metadata("x") == ""  # the connection serves on


# -- cancel ------------------------------------------------------------------------------


def test_unary_cancel_from_another_thread_reaches_the_server(serve: Any, client_class: Any) -> None:
    server = serve()
    with client_class.dial(server.address) as client:
        token = CancelToken()
        outcome: list[BaseException | str] = []

        def call() -> None:
            try:
                outcome.append(client.with_options(cancel=token).slow("c1", 30.0))
            except BaseException as exc:
                outcome.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        wait_for_event(client, "slow started c1")
        started = time.monotonic()
        token.cancel("user pressed stop")
        caller.join(10)
        assert not caller.is_alive()
        assert isinstance(outcome[0], CancelledError), outcome
        assert "user pressed stop" in str(outcome[0])
        assert time.monotonic() - started < 5  # not the 30 s the handler would take
        wait_for_event(client, "slow cancelled c1")
        # A call made with a token already cancelled is refused at once, sending nothing.
        with pytest.raises(CancelledError):
            client.with_options(cancel=token).slow("c2", 30.0)
        assert "slow started c2" not in client.events()
        # The connection is fine for everyone else.
        assert client.meta(False) == "ok"


def test_stream_cancel_token(serve: Any, client_class: Any) -> None:
    server = serve()
    with client_class.dial(server.address) as client:
        token = CancelToken()
        items = client.with_options(cancel=token).echo(iter(range(1000000)))
        assert items.recv() == 0
        token.cancel()
        with pytest.raises(CancelledError):
            for _ in items:
                pass


# -- deadline and metadata propagation ---------------------------------------------------


def test_nested_call_fails_at_the_outer_deadline(serve: Any, client_class: Any) -> None:
    front = serve()
    back = serve()
    with client_class.dial(front.address) as client, client_class.dial(back.address) as backend:
        with pytest.raises(RpcError) as failure:
            client.with_options(timeout=1.0).onward(back.address, "n1")
        assert failure.value.code == StatusCode.DEADLINE_EXCEEDED
        wait_until(
            lambda: any(e.startswith("onward n1 ") for e in client.events()), "onward's record"
        )
        record = next(e for e in client.events() if e.startswith("onward n1 "))
        _, _, outcome, elapsed = record.split()
        # The inherited deadline ends it, or, a moment sooner, the CANCEL the client sends
        # at the same deadline (cancelling the served call cancels its onward calls).
        assert outcome in ("DEADLINE_EXCEEDED", "CANCELLED")
        # Its own default would have waited 60 s for slow(): it gave up at the outer 1 s.
        assert float(elapsed) < 10
        # And the backend saw the call end early too (the client sent CANCEL at the deadline).
        wait_for_event(backend, "slow cancelled n1")


def test_onward_call_carries_the_remaining_deadline(serve: Any, client_class: Any) -> None:
    front = serve()
    back = serve()
    with client_class.dial(front.address) as client:
        assert client.relay_remaining(back.address) == -1.0  # no deadline, none passed on
        remaining = client.with_options(timeout=5.0).relay_remaining(back.address)
        assert 0 < remaining <= 5.0


def test_marked_metadata_propagates(serve: Any, client_class: Any) -> None:
    front = serve(propagate_metadata=["x-request-id"])
    back = serve()
    with client_class.dial(front.address) as client:
        traced = client.with_options(metadata={"x-request-id": "r-42", "secret": "no"})
        assert traced.relay_metadata(back.address, "x-request-id") == "r-42"
        assert traced.relay_metadata(back.address, "secret") == ""


# -- tracing ------------------------------------------------------------------------------


def test_tracing_interceptor_links_client_and_server_spans(
    stub_dir: Path, client_class: Any
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace import StatusCode as SpanStatus

    from gopherpipe_runtime import Server
    from gopherpipe_runtime.interceptors import TracingInterceptor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = TracingInterceptor(tracer_provider=provider)
    server_module = importlib.import_module("e2e_semantics_server")
    impl = importlib.import_module("semantics_impl")
    with Server("tcp://127.0.0.1:0", interceptors=[tracing]) as server:
        server_module.register_semantics(server, impl.SemanticsImpl())
        with client_class.dial(server.addresses[0], interceptors=[tracing]) as client:
            traceparent = client.metadata("traceparent")
            with pytest.raises(RpcError):
                client.meta(True)
            assert list(client.count(2, False)) == [0, 1]
            wait_until(lambda: len(exporter.get_finished_spans()) == 6, "six finished spans")
    spans = exporter.get_finished_spans()
    by_kind = {
        kind: [s for s in spans if s.kind == kind] for kind in (SpanKind.CLIENT, SpanKind.SERVER)
    }
    assert len(by_kind[SpanKind.CLIENT]) == 3 and len(by_kind[SpanKind.SERVER]) == 3
    for client_span in by_kind[SpanKind.CLIENT]:
        server_span = next(s for s in by_kind[SpanKind.SERVER] if s.name == client_span.name)
        assert server_span.context.trace_id == client_span.context.trace_id
        assert server_span.parent is not None
        assert server_span.parent.span_id == client_span.context.span_id
    # The trace context crossed the wire as W3C traceparent metadata.
    first = by_kind[SpanKind.CLIENT][0]
    assert traceparent.split("-")[1] == f"{first.context.trace_id:032x}"
    failed = [s for s in spans if s.name == "Semantics/meta"]
    assert all(s.status.status_code == SpanStatus.ERROR for s in failed)
    assert failed[0].attributes is not None and failed[0].attributes["rpc.method"] == "meta"


def test_cancelling_a_call_cancels_its_onward_calls(serve: Any, client_class: Any) -> None:
    front = serve()
    back = serve()
    with client_class.dial(front.address) as client, client_class.dial(back.address) as backend:
        token = CancelToken()
        outcome: list[BaseException] = []

        def call() -> None:
            try:
                client.with_options(cancel=token).onward(back.address, "k1")
            except BaseException as exc:
                outcome.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        wait_for_event(backend, "slow started k1")
        token.cancel()
        caller.join(10)
        assert not caller.is_alive()
        assert isinstance(outcome[0], CancelledError), outcome
        # front's handler was cancelled (CANCEL), which cancelled its call to back.
        wait_for_event(backend, "slow cancelled k1")
        wait_until(
            lambda: any(e.startswith("onward k1 CANCELLED") for e in client.events()),
            "onward k1 CANCELLED",
        )
