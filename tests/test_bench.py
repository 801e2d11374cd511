"""`make bench` in its smoke mode: the whole benchmark on SQLite + the embedded queue with tiny numbers writes
results.md with every figure and both plots (the figures themselves are not judged here)."""

import os
import subprocess
import sys

from tests.bench import FIGURE_LABELS
from tests.stack import ROOT


def test_quick_benchmark_writes_every_figure(tmp_path):
    out = tmp_path / "bench"
    env = {
        **os.environ,
        "BENCH_QUICK": "1",
        "BENCH_BACKEND": "sqlite",
        "BENCH_OUT": str(out),
        "BENCH_CONCURRENCY": "2,4",
    }
    finished = subprocess.run(
        [sys.executable, "-m", "tests.bench"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert "on SQLite + embedded Huey" in finished.stdout
    report = (out / "results.md").read_text()
    for label in FIGURE_LABELS:
        for concurrency in (2, 4):
            expected = label.format(c=concurrency, top=4)
            assert f"| {expected} | " in report, f"missing figure: {expected}"
    for section in ("## Machine and settings", "Backend: **SQLite + embedded Huey**", "## Peak memory", "## Where"):
        assert section in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and " | n/a | " in line]
    assert not rows, rows  # every figure measured
    for plot in ("latency.png", "mass-enrollment.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
