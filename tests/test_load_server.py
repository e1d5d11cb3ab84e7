"""benchmarks/load_server.py at a toy size: every request answered, and the report's numbers are sane."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "load_server.py"


@pytest.fixture(scope="module")
def load_server():
    spec = importlib.util.spec_from_file_location("load_server", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_small_load_has_no_errors(load_server, capsys):
    code = load_server.main(["--clients", "2", "--requests", "6", "--size", "64", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result["first_errors"]
    assert result["requests"] == result["ok"] == 6 and result["errors"] == 0
    assert result["url"].startswith("http://127.0.0.1:")
    assert 0 < result["latency_s"]["p50"] <= result["latency_s"]["p95"] <= result["latency_s"]["max"]
    assert result["throughput_rps"] > 0 and result["peak_rss_mib"] > 0
    assert result["photos"] >= 1 and 0 < result["mean_mask_area"] < 1
    assert "untrained" in result["model"] and result["machine"]["cores"] >= 1
    text = load_server.report(result)  # what the run prints without --json
    assert "6 ok, 0 errors" in text and "p95" in text and "peak RSS" in text


def test_folder_without_images_is_exit_code_2(load_server, tmp_path, capsys):
    assert load_server.main(["--images", str(tmp_path), "--requests", "1"]) == 2
    assert "no images" in capsys.readouterr().err
