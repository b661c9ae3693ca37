"""Starting and always stopping child processes, with bounded waits everywhere."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from bench.worker import READY, RESULT

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVER_READY_TIMEOUT_S = 30.0
SERVER_EXIT_TIMEOUT_S = 10.0
_TAIL_LINES = 30


class ChildError(RuntimeError):
    pass


WORKER = "bench.worker"


def _command(*args: str, module: str = WORKER) -> list[str]:
    # -u: the READY line must not sit in a pipe buffer while the runner waits for it.
    return [sys.executable, "-u", "-m", module, *args]


def _pump(stream: IO[str], tag: str, tail: deque[str], lines: queue.Queue[str] | None) -> None:
    """Drain a child's pipe so it never blocks on a full pipe; echo stderr, keep a tail."""
    for line in stream:
        line = line.rstrip("\n")
        tail.append(line)
        if lines is not None and line.startswith(READY):
            lines.put(line)
        else:
            print(f"  [{tag}] {line}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def server(framework: str, transport: str | None = None) -> Iterator[str]:
    """Run the framework's echo server in its own process; yield its address; always stop it.

    With `transport`, the server listens on that transport only (the transports comparison).
    """
    tag = f"{framework} {transport} server" if transport else f"{framework} server"
    proc = subprocess.Popen(
        _command("serve", framework, *([transport] if transport else [])),
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    ready: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, tag, tail, ready)),
        threading.Thread(target=_pump, args=(proc.stderr, tag, tail, None)),
    ]
    for p in pumps:
        p.daemon = True
        p.start()
    try:
        yield _wait_ready(proc, tag, ready, tail, pumps[1])

    finally:
        _stop(proc, tag)


def _wait_ready(
    proc: subprocess.Popen[str],
    tag: str,
    ready: queue.Queue[str],
    tail: deque[str],
    stderr_pump: threading.Thread,
) -> str:
    deadline = time.monotonic() + SERVER_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            return ready.get(timeout=0.05).removeprefix(READY).strip()
        except queue.Empty:
            pass
        if proc.poll() is not None:
            # Let the pump finish reading the traceback so the error names the cause.
            stderr_pump.join(timeout=2)
            raise ChildError(
                f"{tag} exited {proc.returncode} before it was ready: " + _last_line(tail)
            )
    raise ChildError(f"{tag} not ready after {SERVER_READY_TIMEOUT_S:.0f} s: " + _last_line(tail))


def _stop(proc: subprocess.Popen[str], name: str) -> None:
    with contextlib.suppress(OSError):
        assert proc.stdin is not None
        proc.stdin.close()
    try:
        proc.wait(timeout=SERVER_EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(
            f"  note: {name} still running {SERVER_EXIT_TIMEOUT_S:.0f} s after "
            "stdin closed; killed",
            file=sys.stderr,
        )
        proc.kill()
        proc.wait(timeout=SERVER_EXIT_TIMEOUT_S)


def _last_line(tail: deque[str] | list[str]) -> str:
    for line in reversed(tail):
        if line.strip():
            return line.strip()
    return "(no output)"


def measure(
    framework: str,
    scenario: str,
    address: str,
    payload_size: int,
    params: dict[str, Any],
    timeout: float,
) -> dict[str, Any]:
    """Run one scenario in a fresh client process and return its figures."""
    return result(
        f"{framework} {scenario}",
        "measure", framework, scenario, address, str(payload_size), json.dumps(params),
        timeout=timeout,
    )  # fmt: skip


def result(tag: str, *args: str, timeout: float, module: str = WORKER) -> dict[str, Any]:
    """Run `python -m module *args` to the end and return the figures of its RESULT line."""
    cmd = _command(*args, module=module)
    try:
        done = subprocess.run(
            cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ChildError(f"{tag}: no result after {timeout:.0f} s") from exc
    for line in done.stdout.splitlines():
        if line.startswith(RESULT):
            figures: dict[str, Any] = json.loads(line.removeprefix(RESULT))
            return figures
    err = done.stderr.splitlines()
    if err:
        print(f"  [{tag} client] " + "\n    ".join(err[-_TAIL_LINES:]), file=sys.stderr)
    raise ChildError(f"{tag}: client exited {done.returncode}: {_last_line(err)}")


class Child:
    """A worker process that talks in lines: `expect` a line by its prefix, `send` one.

    stdout lines are queued for `expect`; stderr is echoed (tagged) and its tail kept for
    errors. `stop` closes stdin (the lifeline), waits, and kills if it must.
    """

    def __init__(self, tag: str, *args: str, module: str = WORKER) -> None:
        self.tag = tag
        self.proc = subprocess.Popen(
            _command(*args, module=module),
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._pumps = [
            threading.Thread(target=self._queue_lines, args=(self.proc.stdout,), daemon=True),
            threading.Thread(
                target=_pump, args=(self.proc.stderr, tag, self._tail, None), daemon=True
            ),
        ]
        for p in self._pumps:
            p.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _queue_lines(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float) -> str:
        """The rest of the next stdout line starting with `prefix`; other lines are echoed."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildError(
                    f"{self.tag}: no {prefix.strip()!r} after {timeout:.0f} s: "
                    + _last_line(self._tail)
                )
            try:
                line = self._lines.get(timeout=min(left, 0.1))
            except queue.Empty:
                if self.proc.poll() is not None and self._lines.empty():
                    self._pumps[1].join(timeout=2)
                    raise ChildError(
                        f"{self.tag} exited {self.proc.returncode}: " + _last_line(self._tail)
                    ) from None
                continue
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()
            print(f"  [{self.tag}] {line}", file=sys.stderr, flush=True)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        _stop(self.proc, self.tag)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
