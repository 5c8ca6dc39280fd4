"""The benchmark runs end to end and reports every figure (speeds are printed by it, never asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_bench_quick_reports_every_figure():
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    for key in (
        "torch_crops_per_s_b1", "onnx_crops_per_s_b32", "image_p50_ms", "image_p95_ms", "clip_total_s", "clip_stages_ms",
        "original_clip_s", "speedup_vs_original", "vit_best_ms", "speedup_vs_vit", "cold_start_s", "cli_peak_rss_mb",
        "server_throughput_rps", "server_p50_ms", "server_p95_ms", "server_errors", "peak_rss_mb", "click_to_label_s",
    ):  # fmt: skip
        assert key in figures, key
    assert figures["server_errors"] == 0 and figures["server_requests"] == 16
    assert figures["clip_frames_analyzed"] == 16
    assert all(figures[k] > 0 for k in ("onnx_crops_per_s_b32", "image_p50_ms", "clip_total_s", "peak_rss_mb"))
    assert len(figures["click_to_label_runs_s"]) == 3
    assert figures["clip_encoder_ms_per_crop"] > 0  # setup fetches the CLIP encoder
    for view in ("accurate", "combined"):  # the embedded accurate view alone and beside the default
        assert figures[f"{view}_image_p50_ms"] > 0 and figures[f"{view}_clip_total_s"] > 0
    for mode in ("local_1", "local_2", "celery_1", "celery_2"):  # one process, and API + Celery workers on Redis
        scale = figures[f"scale_{mode}"]
        assert scale["jobs_per_s"] > 0 and 0 < scale["p50_s"] <= scale["p95_s"], (mode, scale)
