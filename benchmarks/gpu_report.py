"""The two Python steps of benchmarks/gpu_check.sh: what machine this is (`env`) and what the check found
(`summary`). Reads and writes only files under the output folder.

    python benchmarks/gpu_report.py env OUT
    python benchmarks/gpu_report.py summary OUT "tests=ok:0:41 train_thesis=timeout:124:60 ..."
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

PACKAGES = (
    "torch",
    "lightning",
    "torchmetrics",
    "opencv-python-headless",
    "numpy",
    "albumentations",
    "pydantic",
)
# the thesis' claim at LaMa's scale and the issue's inference goal (docs/benchmarks.md, "On a GPU")
LATENT_CONTROL_MAX_RATIO = 0.72
BF16_MIN_SPEEDUP, BF16_MAX_MEAN_GREY = 1.5, 2.0


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    import torch

    info: dict = {
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "cuda_available": torch.cuda.is_available(),
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "cpu_count": __import__("os").cpu_count(),
        "carried_wheels": sorted(p.name for p in Path(".gpu/whl").glob("*.whl")),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        free, total = torch.cuda.mem_get_info(0)
        info["gpu"] = {
            "name": props.name,
            "multiprocessors": props.multi_processor_count,
            "memory_gib": round(total / 2**30, 1),
            "free_gib": round(free / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
        }
        try:  # read-only query; clocks and modes are never changed
            query = "--query-gpu=name,driver_version,memory.used,memory.total,clocks.sm"
            info["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", query, "--format=csv,noheader"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            info["nvidia_smi"] = None
    return info


def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _runs(data) -> list[dict]:
    if data is None:
        return []
    return data["runs"] if "runs" in data else [data]


def _tests(junit: Path) -> dict | None:
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root)
    count = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    count["passed"] = count["tests"] - count["failures"] - count["errors"] - count["skipped"]
    failed = [
        f"{case.get('classname', '')}::{case.get('name', '')}"
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return {**count, "failed": failed}


def training(data) -> list[dict]:
    """One row per (arch, batch, precision): s/step per preset and latent-control / pixel-alpha."""
    rows = []
    for run in _runs(data):
        presets = run.get("presets", {})
        row = {k: run.get(k) for k in ("arch", "size", "batch", "precision", "device")}
        row["step_s"] = {p: r.get("step_s", r.get("error")) for p, r in presets.items()}
        row["peak_memory_mb"] = {p: r.get("peak_memory_mb") for p, r in presets.items()}
        pixel, control = presets.get("pixel-alpha", {}), presets.get("latent-control", {})
        if "step_s" in pixel and "step_s" in control:
            row["latent_control_ratio"] = control["step_s"] / pixel["step_s"]
        rows.append(row)
    return rows


def inference(*datas) -> dict:
    """Per size: s/image of every variant, the bf16 speed-ups and grey-level differences."""
    sizes: dict = {}
    for data in datas:
        for size, row in (data or {}).get("sizes", {}).items():
            entry = sizes.setdefault(size, {})
            entry["eager_s"] = row["eager_s"]
            for key, value in row.items():
                if key.endswith(("_s", "_speedup", "_grey_diff")) and key != "compile_s":
                    entry[key] = value
            if "optimized_s" in row and "optimized_bf16_s" in row:
                entry["optimized_bf16_vs_optimized"] = row["optimized_s"] / row["optimized_bf16_s"]
    return sizes


def claims(train_rows: list[dict], infer: dict) -> list[dict]:
    """The issue's goals, checked against what was measured (None: not measured)."""
    found = []
    for row in train_rows:
        if row.get("batch") == 32 and row.get("size") == 256 and "latent_control_ratio" in row:
            ratio = row["latent_control_ratio"]
            found.append({
                "claim": f"latent-control <= {LATENT_CONTROL_MAX_RATIO}x pixel-alpha "
                         f"({row['arch']}, 256 px, batch 32, {row['precision']})",
                "value": round(ratio, 3), "holds": ratio <= LATENT_CONTROL_MAX_RATIO,
            })  # fmt: skip
    row = infer.get("512", {})
    if "eager_bf16_speedup" in row:
        speedup, grey = row["eager_bf16_speedup"], row.get("eager_bf16_mean_grey_diff")
        found.append({
            "claim": f"big-lama 512 px: bf16 >= {BF16_MIN_SPEEDUP}x fp32, mean grey difference <= {BF16_MAX_MEAN_GREY}",
            "value": {"speedup": round(speedup, 2), "mean_grey_diff": grey},
            "holds": speedup >= BF16_MIN_SPEEDUP and grey is not None and grey <= BF16_MAX_MEAN_GREY,
        })  # fmt: skip
    return found


def summary(out: Path, sections: str) -> dict:
    status = {}
    for item in sections.split():
        name, _, rest = item.partition("=")
        state, rc, seconds = (rest.split(":") + ["", "", ""])[:3]
        status[name] = {"status": state, "exit": int(rc or 0), "seconds": int(seconds or 0)}
    train_rows = training(_load(out / "train_thesis.json")) + training(_load(out / "train_big_lama.json"))
    infer = inference(_load(out / "infer.json"), _load(out / "infer_compile.json"))
    env = _load(out / "env.json") or {}
    result = {
        "machine": (env.get("gpu") or {}).get("name") or "no GPU (CPU run)",
        "sections": status,
        "tests": _tests(out / "pytest.xml"),
        "training": train_rows,
        "inference": infer,
        "claims": claims(train_rows, infer),
    }
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    return result


def print_summary(result: dict) -> None:
    print(f"== summary: {result['machine']}")
    print(
        "sections: "
        + ", ".join(f"{k} {v['status']} ({v['seconds']} s)" for k, v in result["sections"].items())
    )
    tests = result["tests"]
    if tests:
        print(
            f"gpu tests: {tests['passed']} passed, {tests['failures'] + tests['errors']} failed, {tests['skipped']} skipped"
        )
        for name in tests["failed"][:3]:
            print(f"  failed: {name}")
    for row in result["training"]:
        steps = " ".join(
            f"{p} {v * 1e3:.1f}ms" if isinstance(v, float) else f"{p} {v}" for p, v in row["step_s"].items()
        )
        ratio = row.get("latent_control_ratio")
        tail = f" | latent-control/pixel-alpha {ratio:.2f}x" if ratio else ""
        print(f"train {row['arch']} {row['size']}px b{row['batch']} {row['precision']}: {steps}{tail}")
    for size, row in result["inference"].items():
        parts = [f"eager {row['eager_s'] * 1e3:.1f}ms"]
        for key in ("optimized", "eager_bf16", "optimized_bf16", "optimized_compile"):
            if f"{key}_s" in row:
                grey = row.get(f"{key}_mean_grey_diff")
                parts.append(f"{key} {row[f'{key}_s'] * 1e3:.1f}ms ({row[f'{key}_speedup']:.2f}x"
                             + (f", grey {grey:.2f}" if grey is not None else "") + ")")  # fmt: skip
        print(f"infer {size}px: " + ", ".join(parts))
    for claim in result["claims"]:
        print(
            f"claim: {claim['claim']}: {claim['value']} -> {'holds' if claim['holds'] else 'does not hold'}"
        )


def main(argv: list[str]) -> int:
    command, out = argv[0], Path(argv[1])
    if command == "env":
        info = environment()
        (out / "env.json").write_text(json.dumps(info, indent=2))
        gpu = info.get("gpu")
        print(f"machine: {gpu['name'] if gpu else 'no CUDA device'}; torch {info['packages']['torch']}, "
              f"lightning {info['packages']['lightning']}, CUDA {info['torch_cuda']}")  # fmt: skip
        return 0
    if command == "summary":
        print_summary(summary(out, argv[2] if len(argv) > 2 else ""))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
