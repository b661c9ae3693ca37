"""Every golden case's stubs, and the echo example's, pass `mypy --strict`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "service.py").exists())
STUBS = ["service_client.py", "service_server.py"]


def test_stubs_pass_mypy_strict(tmp_path: Path, copy_case: Callable[[str, Path], Path]) -> None:
    # Flat cases all have a module called `service`, so each case is its own mypy run;
    # the runs go in parallel and share a cache, so the runtime is analysed once.
    runs: dict[str, tuple[Path, list[str]]] = {}
    for case in CASES:
        folder = copy_case(case, tmp_path / "cases")
        for stub in STUBS:
            shutil.copy(GOLDEN / case / stub, folder / stub)
        if (folder / "__init__.py").exists():
            runs[case] = (folder.parent, [f"{case}/{stub}" for stub in STUBS])
        else:
            runs[case] = (folder, STUBS)
    echo = ROOT / "examples" / "echo"
    runs["examples/echo"] = (echo, STUBS)
    cache = tmp_path / "mypy_cache"
    # Warm the cache with the runtime first so the parallel runs do not race to write it.
    subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), "-p",
         "gopherpipe_runtime"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    processes = {
        case: subprocess.Popen(
            [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), *files],
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{cwd}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for case, (cwd, files) in runs.items()
    }
    failures = {}
    for case, process in processes.items():
        output, _ = process.communicate(timeout=110)
        if process.returncode != 0:
            failures[case] = output
    assert failures == {}
    assert set(runs) == {*CASES, "examples/echo"}
