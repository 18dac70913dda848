"""The ACT experiment, mechanically: every arm runs, the metrics are in range, the report and
the plot are written. It asserts nothing about which arm wins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_experiment_smoke(tmp_path):
    out = tmp_path / "experiment"
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "act_learns.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    report = json.loads((out / "report" / "results.json").read_text())
    assert set(report["results"]) == {"pi0 (before ACT)", "ACT only", "IL", "IL w/ ACT", "RL", "RL w/ ACT"}
    for arm, metrics in report["results"].items():
        for metric in ("judge_accuracy", "dev/next_action_accuracy", "dev/success_rate"):
            assert 0.0 <= metrics[metric]["mean"] <= 1.0, (arm, metric)
            assert metrics[metric]["seeds"] == 1
    assert report["judge_reward_curves"] and all(0.0 <= r <= 1.0 for r in report["judge_reward_curves"][0])
    png = out / "report" / "act_learns.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "judge_accuracy" in proc.stdout  # the table was printed
