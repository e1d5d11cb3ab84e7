"""benchmarks/gpu_check.sh, the one prepared check for a GPU machine, kept from rotting: its --quick mode runs
here on the CPU (tiny sizes), and its report reads what the benchmarks write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_report  # noqa: E402

EXPECTED = {"env.json", "pytest.xml", "train_thesis.json", "infer.json", "summary.json", "gpu_check.log"}


@pytest.mark.slow
def test_quick_check_runs_on_a_cpu_and_writes_its_files(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    env.pop("ONLY", None)
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--quick"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    files = {p.name for p in tmp_path.iterdir()}
    assert files == EXPECTED and len(files) <= 8  # the device tool brings back at most 8 flat files
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {s["status"] for s in summary["sections"].values()} == {"ok"}
    assert set(summary["sections"]) == {"tests", "train_thesis", "infer"}
    assert summary["tests"]["failed"] == [] and summary["tests"]["tests"] > 0
    (thesis_fp32, thesis_bf16) = summary["training"]
    assert {thesis_fp32["precision"], thesis_bf16["precision"]} == {"32-true", "bf16-mixed"}
    assert "latent_control_ratio" in thesis_fp32
    assert {"eager_s", "optimized_s", "eager_bf16_s", "eager_bf16_mean_grey_diff"} <= set(
        summary["inference"]["32"]
    )
    assert result.stdout.strip().splitlines()[-1].startswith(("infer", "claim"))  # the summary comes last


def test_the_report_checks_the_issues_claims(tmp_path):
    def run(arch, precision, pixel, control):
        presets = {"pixel-alpha": {"step_s": pixel}, "latent-control": {"step_s": control}}
        return {
            "arch": arch,
            "size": 256,
            "batch": 32,
            "precision": precision,
            "device": "cuda",
            "presets": presets,
        }

    train = {"runs": [run("thesis", "32-true", 0.1, 0.07), run("thesis", "bf16-mixed", 0.05, 0.04)]}
    (tmp_path / "train_thesis.json").write_text(json.dumps(train))
    (tmp_path / "train_big_lama.json").write_text(
        json.dumps(
            {
                **run("big-lama", "bf16-mixed", 0.5, 0.3),
                "presets": {"pixel-alpha": {"error": "out of memory"}},
            }
        )
    )
    row = {
        "eager_s": 0.03,
        "eager_bf16_s": 0.015,
        "eager_bf16_speedup": 2.0,
        "eager_bf16_mean_grey_diff": 0.4,
    }
    (tmp_path / "infer.json").write_text(json.dumps({"sizes": {"512": row}}))
    result = gpu_report.summary(tmp_path, "tests=ok:0:30 train_thesis=ok:0:40 train_big_lama=timeout:124:110")
    assert result["sections"]["train_big_lama"] == {"status": "timeout", "exit": 124, "seconds": 110}
    holds = {
        c["claim"].split("(")[-1].rstrip(")"): c["holds"] for c in result["claims"] if "latent" in c["claim"]
    }
    assert holds == {"thesis, 256 px, batch 32, 32-true": True, "thesis, 256 px, batch 32, bf16-mixed": False}
    assert any(c["holds"] and "bf16" in c["claim"] for c in result["claims"])
    assert result["training"][2]["step_s"]["pixel-alpha"] == "out of memory"
    gpu_report.print_summary(result)  # prints without error, errors and missing runs included
