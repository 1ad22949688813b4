"""The benchmarks run (tiny counts, nothing timed, nothing written), so they cannot rot between full runs.

Performance itself is measured by ``./dev bench``, side by side with the official SDK and the floor in
one run; no test here asserts anything about time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# the benchmarks start Azurite themselves; the comparison took 120 s with both cores busy (12 s idle): the
# bound is the subprocesses' own (600 s), for a hang, not for speed
pytestmark = [pytest.mark.emulator, pytest.mark.timeout(900)]

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run(*args: str, timeout: float = 600) -> str:
    # not under coverage: a benchmark's children ran 3x slower measured, and the suite covers the code
    # they run already (what these tests prove is that the harness works)
    env = {k: v for k, v in os.environ.items() if k != "COVERAGE_PROCESS_CONFIG"}
    done = subprocess.run(
        [sys.executable, *args], cwd=BENCHMARKS.parent, capture_output=True, text=True, timeout=timeout, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_the_comparison_runs_every_phase_for_every_client():
    before = _files()
    out = run(str(BENCHMARKS / "run.py"), "--smoke")
    for label in (
        "send N (concurrency 32)",
        "receive 32 + delete each, until drained",
        "peek 32",
        "peek, empty queue",
        "consumer end to end",
    ):
        row = next(line for line in out.splitlines() if line.startswith(f"| {label} |"))
        # a CPU figure for each of the four clients, and a ratio to the floor for each of the other three
        assert len(re.findall(r"\| \d+ ", row)) == 4, row
        assert len(re.findall(r"\*\*\d+\.\d\dx\*\*", row)) == 3, row
    assert _files() == before, "a smoke run wrote a file"


def _files() -> dict[Path, int]:
    """Every file under benchmarks/ but Python's bytecode cache, with its modification time."""
    return {p: p.stat().st_mtime_ns for p in BENCHMARKS.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_the_memory_benchmark_runs():
    out = run(str(BENCHMARKS / "memory.py"), "--in-flight", "40")
    assert re.search(r"40 messages of 256 B in flight: [\d,]+ KiB of Python allocations", out), out


@pytest.mark.slow
def test_the_worker_scaling_benchmark_runs():
    out = run(str(BENCHMARKS / "worker_scaling.py"), "--messages", "60", "--rounds", "1", "--concurrency", "4")
    assert re.search(r"1 process [\d,]+ msgs/s, 2 processes [\d,]+ msgs/s", out), out
