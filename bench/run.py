"""Benchmark: the engine and the server on this machine, with the alternatives measured in the same run.

Inputs are made from the shared real media ($DEEPFAKE_SHARED_DIR, default ../shared) during the run:
- a 640x480 JPEG with one face (a frame of the FaceForensics++ sample video);
- a 60-second 1280x720 30 fps H.264 clip (that video looped and scaled by ffmpeg, x264 defaults);
- the 15-s FaceForensics++ clip itself, as a post on a local feed page, for click to label (bench/click_to_label.py).

Figures are medians (and p95 where a distribution matters) of repeated runs; baselines run on the same inputs:
- "original": the replaced system's video approach on our model: decode every frame, keep 4 per second, one
  model call per kept frame (PyTorch, batch 1), moving average;
- "ViT-B/16": the usual Hub image classifier (torchvision's vit_b_16; random weights, the speed is the same), per
  image as such classifiers are used: the whole image resized to 224, one forward pass; PyTorch and ONNX Runtime,
  the faster counts.
No figure here is asserted by a test; tests only check that the benchmark runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

TARGETS = {
    "onnx_crops_per_s_b32": (">=", 500.0, "crops/s"),
    "image_p50_ms": ("<=", 40.0, "ms"),
    "clip_total_s": ("<=", 2.0, "s"),
    "speedup_vs_original": (">=", 10.0, "x"),
    "speedup_vs_vit": (">=", 5.0, "x"),
    "server_p95_over_p50": ("<=", 3.0, "x"),
    "server_errors": ("<=", 0.0, ""),
    "peak_rss_mb": ("<=", 1536.0, "MB"),
    "click_to_label_s": ("<=", 3.0, "s"),
}
PARTS = ("core", "original", "vit", "cold", "server", "click", "clip", "scale")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def timed(fn, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


# ---------------------------------------------------------------------------------------------- inputs


def make_inputs(work: Path, shared: Path, quick: bool) -> dict[str, Path]:
    from PIL import Image

    from detector.media import open_media

    source = shared / "data" / "media" / "videos" / "fake_ffpp_000_003.mp4"
    if not source.is_file():
        raise SystemExit(f"bench: {source} not found: set DEEPFAKE_SHARED_DIR")
    with open_media(source) as video:
        frame = next(video.frames_at([4.0]))
        Image.fromarray(video.to_rgb(frame.frame)).save(work / "face_640x480.jpg", quality=92)
    clip = work / "clip_1280x720_60s.mp4"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(source),
         "-vf", "scale=1280:720,fps=30", "-t", "60", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    return {"image": work / "face_640x480.jpg", "clip": clip, "post_clip": source}


# ---------------------------------------------------------------------------------------------- engine


def bench_model(detector, image: Path, quick: bool) -> dict:
    """Face crops per second through encoder + per-frame head, PyTorch vs ONNX Runtime, batch 1 / 8 / 32."""
    from detector.backends import create_backend
    from detector.preprocess import crops_to_array

    analysis = detector.inspect(image)
    prep = detector.config.preprocessing
    from detector.faces import extract_face_tracks

    found = extract_face_tracks([analysis.key_frames[0].image], detector.face_detector(), prep.crop_margin, prep.input_size, 1)
    crop = found.crops[0][0]
    out = {}
    for name in ("torch", "onnx"):
        backend = create_backend(detector.checkpoint, detector.settings, name, threads=os.cpu_count())
        for batch in (1, 8, 32):
            inputs = crops_to_array(np.stack([crop] * batch), prep)

            def run(backend=backend, inputs=inputs):
                features = backend.encode(inputs)
                backend.sequence(features[None])

            seconds = statistics.median(timed(run, 5 if quick else 20, warmup=2))
            out[f"{name}_crops_per_s_b{batch}"] = round(batch / seconds, 1)
    return out


def bench_image(detector, image: Path, quick: bool) -> dict:
    times = timed(lambda: detector.analyze(image), 20 if quick else 100, warmup=3)
    ms = [t * 1000 for t in times]
    return {"image_p50_ms": round(percentile(ms, 50), 1), "image_p95_ms": round(percentile(ms, 95), 1)}


def bench_clip(detector, clip: Path, quick: bool) -> dict:
    reports = []

    def run():
        reports.append(detector.analyze(clip).to_dict())

    times = timed(run, 1 if quick else 3, warmup=1)
    stages = {k: round(statistics.median(r["timings_ms"][k] for r in reports[1:]), 1) for k in ("decode", "faces", "model")}
    return {
        "clip_total_s": round(statistics.median(times), 3),
        "clip_stages_ms": stages,
        "clip_frames_analyzed": reports[-1]["media"]["frames_analyzed"],
    }


def bench_clip_paths(inputs: dict[str, Path], quick: bool, accurate: str | None) -> dict:
    """What the CLIP paths cost: the frozen CLIP ViT-B/16 encoder per face crop (what any CLIP-backed checkpoint adds
    to the fast path), and `--accurate MODEL` (the embedded `accurate` by default; a clip-lstm checkpoint) alone
    and combined with the measured model. Skipped, and said so, where the CLIP encoder is not in the cache."""
    import numpy as np

    from detector import Detector
    from detector.clip import ClipEncoder
    from detector.settings import CoreSettings

    settings = CoreSettings.from_env()
    if settings.clip_tower() is None:
        return {"clip_paths": "skipped: no CLIP encoder (python -m detector clip-fetch)"}
    encoder = ClipEncoder.load(settings.cache_folder("clip"), settings.clip_onnx)
    crops = np.random.default_rng(0).integers(0, 256, (16, 224, 224, 3), dtype=np.uint8)
    encoder.embed(crops[:2])  # warm-up
    timings = []
    for _ in range(1 if quick else 3):
        started = time.perf_counter()
        encoder.embed(crops)
        timings.append((time.perf_counter() - started) * 1000 / len(crops))
    out = {"clip_encoder_ms_per_crop": round(statistics.median(timings), 1)}
    if accurate:
        for name, model in (("accurate", accurate), ("combined", f"default+{accurate}")):
            detector = Detector.load(model)
            out[f"{name}_image_p50_ms"] = bench_image(detector, inputs["image"], True)["image_p50_ms"]
            out[f"{name}_clip_total_s"] = bench_clip(detector, inputs["clip"], True)["clip_total_s"]
    return out


def original_video_approach(detector, clip: Path) -> float:
    """The replaced system on our model: every frame decoded, 4 kept per second, one model call each, moving average."""
    import torch

    from detector.backends import TorchBackend
    from detector.decision import calibrated, moving_average
    from detector.faces import extract_face_tracks
    from detector.media import open_media
    from detector.preprocess import crops_to_array

    prep, decision = detector.config.preprocessing, detector.config.decision
    backend = TorchBackend(detector.checkpoint.model, torch.device("cpu"))
    face_detector = detector.face_detector()
    started = time.perf_counter()
    probabilities = []
    with open_media(clip) as video:
        step = max(1, round(video.fps / 4))
        container = video._container
        container.seek(0)
        for i, frame in enumerate(container.decode(video=0)):
            rgb = frame.to_ndarray(format="rgb24")  # the original converted every decoded frame
            if i % step:
                continue
            found = extract_face_tracks([rgb], face_detector, prep.crop_margin, prep.input_size, 1)
            if not found.tracks:
                continue
            features = backend.encode(crops_to_array(np.stack(found.crops[0]), prep))
            frame_logits, _ = backend.sequence(features[None])
            probabilities.append(calibrated(float(frame_logits[0, 0]), decision.frame_temperature, decision.frame_bias))
    moving_average(probabilities, 5)
    return time.perf_counter() - started


def vit_per_image(image: Path, quick: bool) -> dict:
    """ViT-B/16 per image, as Hub image classifiers are used: whole image resized to 224, one forward pass."""
    import torch
    import torchvision
    from PIL import Image

    model = torchvision.models.vit_b_16(weights=None).eval()

    def prepare():
        with Image.open(image) as im:
            array = np.asarray(im.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        return ((array - 0.5) / 0.5).transpose(2, 0, 1)[None].copy()

    def run_torch():
        with torch.inference_mode():
            model(torch.from_numpy(prepare()))

    result = {"vit_torch_ms": round(statistics.median(timed(run_torch, 5 if quick else 20)) * 1000, 1)}
    try:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "vit.onnx"
            # with gradients on, torchvision's attention takes its exportable path (not the fused inference kernel)
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model, (torch.zeros(1, 3, 224, 224),), str(path), input_names=["x"], opset_version=17, dynamo=False
                )
            options = ort.SessionOptions()
            options.intra_op_num_threads = os.cpu_count() or 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            result["vit_onnx_ms"] = round(
                statistics.median(timed(lambda: session.run(None, {"x": prepare()}), 5 if quick else 20)) * 1000, 1
            )
    except Exception as exc:  # the export is a courtesy to the baseline; its absence does not stop the benchmark
        result["vit_onnx_error"] = str(exc)[:200]
    result["vit_best_ms"] = min(v for k, v in result.items() if k in ("vit_torch_ms", "vit_onnx_ms"))
    return result


# ---------------------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cold_start(image: Path, runs: int, model: str) -> dict:
    """Process start to first Report (the CLI on one image), and that process's peak resident memory.

    The peak is read by GNU time from a small parent: a child forked from this (large) process would inherit our
    own high-water mark in its rusage."""
    walls, peaks = [], []
    for _ in range(runs):
        with tempfile.NamedTemporaryFile("r", suffix=".txt") as peak_file:
            started = time.perf_counter()
            proc = subprocess.run(
                ["/usr/bin/time", "-f", "%M", "-o", peak_file.name, sys.executable, "-m", "detector", "analyze", str(image),
                 "--json", "--model", model],
                cwd=ROOT, capture_output=True, text=True,
            )  # fmt: skip
            walls.append(time.perf_counter() - started)
            peaks.append(int(peak_file.read().strip().splitlines()[-1]) / 1024)
        if proc.returncode != 0 or not json.loads(proc.stdout).get("verdict"):
            raise RuntimeError("the CLI did not produce a Report")
    return {"cold_start_s": round(statistics.median(walls), 2), "cli_peak_rss_mb": round(max(peaks), 1)}


def bench_server(image: Path, clients: int, per_client: int, model: str) -> dict:
    """The real server (python -m server) under `clients` concurrent clients posting distinct images."""
    data = Path(tempfile.mkdtemp(prefix="bench-server-"))
    proc, base = _start_server(data, clients, model)
    try:
        _wait_until_ready(proc, base)
        variant = _image_variants(image)
        _post_image(base, variant(10**6))  # warm-up
        bodies = [[variant(c * per_client + i) for i in range(per_client)] for c in range(clients)]
        results, wall = _post_concurrently(base, bodies)
        latencies = [r[0] * 1000 for r in results]
        peak = _vm_hwm_mb(proc.pid)
        return {
            "server_requests": len(results),
            "server_throughput_rps": round(len(results) / wall, 2),
            "server_p50_ms": round(percentile(latencies, 50), 1),
            "server_p95_ms": round(percentile(latencies, 95), 1),
            "server_p95_over_p50": round(percentile(latencies, 95) / percentile(latencies, 50), 2),
            "server_errors": sum(r[1] for r in results),
            "server_peak_rss_mb": peak,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)


def _start_server(data: Path, clients: int, model: str) -> tuple[subprocess.Popen, str]:
    """`python -m server` on a free loopback port with its data in `data`, sized for `clients`: (process, base URL)."""
    port = free_port()
    env = {
        **os.environ,
        "DEEPFAKE_DATA_DIR": str(data),
        "DEEPFAKE_RATE_LIMIT": "100000/minute",
        "DEEPFAKE_QUEUE_SIZE": str(clients * 4),
        "DEEPFAKE_CLIENT_WAITING": str(clients * 2),  # every client is 127.0.0.1: let all of them wait
        "HF_HUB_OFFLINE": "1",
        "DEEPFAKE_LOG_LEVEL": "WARNING",
        "DEEPFAKE_MODEL": model,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}"


def _wait_until_ready(proc: subprocess.Popen, base: str) -> None:
    """Poll /readyz for up to two minutes; RuntimeError if the server exits or is still not ready."""
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            raise RuntimeError("the server did not become ready")
        time.sleep(0.5)


def _image_variants(image: Path):
    """A function k -> JPEG bytes of `image` with one pixel flipped, a different pixel for each k."""
    from PIL import Image

    original = Image.open(image).convert("RGB")

    def variant(k: int) -> bytes:
        # a different pixel each time: distinct content, so the server's content cache never answers
        array = np.asarray(original).copy()
        array[k % array.shape[0], (k // array.shape[0]) % array.shape[1]] ^= 0xFF
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=92)
        return buffer.getvalue()

    return variant


def _post_image(base: str, body: bytes) -> tuple[float, int]:
    """POST one JPEG to /api/v1/analyze: (seconds taken, 0 if answered with a verdict else 1)."""
    boundary = uuid.uuid4().hex
    payload = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="img.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        ).encode()
        + body
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        base + "/api/v1/analyze", data=payload, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            ok = answer.status == 200 and json.loads(answer.read())["report"]["verdict"]
            return time.perf_counter() - started, 0 if ok else 1
    except Exception:
        return time.perf_counter() - started, 1


def _post_concurrently(base: str, bodies: list[list[bytes]]) -> tuple[list[tuple[float, int]], float]:
    """One thread per client posting its bodies in turn: (every post's outcome, wall-clock seconds of the run)."""
    results: list[tuple[float, int]] = []
    lock = threading.Lock()

    def client(c: int):
        for body in bodies[c]:
            outcome = _post_image(base, body)
            with lock:
                results.append(outcome)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - started


def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


# ---------------------------------------------------------------------------------------------- report


def verdict(key: str, value: float) -> str:
    op, target, unit = TARGETS[key]
    ok = value >= target if op == ">=" else value <= target
    if ok:
        return f"{op} {target:g} {unit}: met".strip()
    gap = (target / value if op == ">=" else value / target) if value else float("inf")
    return f"{op} {target:g} {unit}: MISSED ({gap:.2f}x off)"


def format_table(results: dict) -> str:
    rows = [("figure", "value", "target")]
    for key, value in results.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        rows.append((key, str(value), verdict(key, results[key]) if key in TARGETS else ""))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)).rstrip() for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and clients (a smoke run, figures noisier)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--skip", default="", help=f"comma-separated parts to skip: {','.join(PARTS)}")
    parser.add_argument("--only", default="", help="comma-separated parts to run, e.g. click (default: all)")
    parser.add_argument("--model", default=os.environ.get("DEEPFAKE_MODEL", "default"), help="checkpoint to measure")
    parser.add_argument(
        "--accurate", default="accurate", help="the clip-lstm checkpoint whose cost the clip part measures (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = (skip | only) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; the parts are {', '.join(PARTS)}")
    run = {part for part in PARTS if part not in skip and (not only or part in only)}

    from detector import Detector
    from detector.env import set_threads
    from detector.settings import CoreSettings

    settings = CoreSettings.from_env()
    set_threads(None, settings.threads)
    results: dict = {"cpu_cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        inputs = make_inputs(Path(tmp), settings.shared_folder(), args.quick)
        detector = Detector.load(args.model, settings=settings)
        results["model"] = f"{detector.checkpoint.id}@{detector.checkpoint.revision} backend {detector.backend.name}"
        if run & {"core", "original", "vit"}:
            results.update(bench_model(detector, inputs["image"], args.quick))
            results.update(bench_image(detector, inputs["image"], args.quick))
            results.update(bench_clip(detector, inputs["clip"], args.quick))
        if "original" in run:
            results["original_clip_s"] = round(original_video_approach(detector, inputs["clip"]), 2)
            results["speedup_vs_original"] = round(results["original_clip_s"] / results["clip_total_s"], 1)
        if "vit" in run:
            results.update(vit_per_image(inputs["image"], args.quick))
            results["speedup_vs_vit"] = round(results["vit_best_ms"] / results["image_p50_ms"], 1)
        if "cold" in run:
            results.update(cold_start(inputs["image"], 1 if args.quick else 3, args.model))
        if "server" in run:
            results.update(bench_server(inputs["image"], clients=8, per_client=2 if args.quick else 8, model=args.model))
        if "clip" in run:
            results.update(bench_clip_paths(inputs, args.quick, args.accurate))
        if "scale" in run:
            from bench.scale import measure as measure_scale

            results.update(measure_scale(inputs["post_clip"], jobs=8 if args.quick else 48))
        if "click" in run:
            from bench.click_to_label import measure

            results.update(measure(inputs["post_clip"], runs=3 if args.quick else 5, model=args.model))
        # the product's processes: the CLI (cold start) and the server under load; this process also holds the baselines
        results["peak_rss_mb"] = max(results.get("cli_peak_rss_mb", 0), results.get("server_peak_rss_mb", 0)) or round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        )
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0
