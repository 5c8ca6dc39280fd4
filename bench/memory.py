"""The server's memory of media judged (server/memory.py): how often copies are recognised, how often different media
is taken for the same, and how long a lookup takes among 100,000 stored fingerprints.

    python -m bench.memory [--json]

1. True matches: each video of the shared media (data/media) and its copies as they circulate (re-encoded at CRF 32,
   rescaled to 480 px high, its first second cut, and screenshot-like crops of three key frames: 5 % cut from each
   side, JPEG), each image and its copies (JPEG quality 60, 480 px, the same crop). Every file is stored as the
   server stores an analysis (8 key frames, through `Memory` on a SQLite database) and each copy is looked up:
   recognised when the original is among its matches.
2. False matches: every pair of different shared media files that match (same lookups), and, at scale, every pair of
   2,000 face pictures of data/faces (one per source group) whose single-frame distance is under the threshold.
3. Lookup time: 100,000 fingerprints stored (random hashes of 6,250 analyses of 8 frames, whole and centre), then
   `Memory.matches` of an 8-frame analysis, median of 20.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import text

from detector.keyframes import select_key_frames
from detector.media import ImageMedia, open_media
from detector.settings import CoreSettings
from server.db import Database, utc_now
from server.memory import MATCH_DISTANCE, Memory, bands, frame_fingerprints, to_signed
from server.records import AnalysisRecord

FRAMES = 8
FACES = 2000
STORED = 100_000


def key_frames(path: Path) -> list[np.ndarray]:
    with open_media(path) as media:
        if isinstance(media, ImageMedia):
            return [media.image]
        return [frame.image for frame in select_key_frames(media, FRAMES)]


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=120)


def crop(source: Path, target: Path) -> Path:
    with Image.open(source) as image:
        width, height = image.size
        image.crop((width // 20, height // 20, width - width // 20, height - height // 20)).convert("RGB").save(
            target, quality=85
        )
    return target


def copies_of(path: Path, folder: Path) -> dict[str, Path]:
    stem, out = path.stem, {}
    if path.suffix == ".mp4":
        for name, args in {
            "crf32": ["-i", str(path), "-c:v", "libx264", "-crf", "32"],
            "480p": ["-i", str(path), "-vf", "scale=-2:480", "-c:v", "libx264", "-crf", "23"],
            "trim1s": ["-ss", "1", "-i", str(path), "-c:v", "libx264", "-crf", "23"],
        }.items():
            out[name] = folder / f"{stem}-{name}.mp4"
            ffmpeg(*args, "-an", str(out[name]))
        with open_media(path) as media:
            times = [f.timestamp_s for f in select_key_frames(media, FRAMES)]
        for n, moment in enumerate(times[1::3][:3]):
            raw = folder / f"{stem}-frame{n}.png"
            ffmpeg("-ss", f"{moment:.3f}", "-i", str(path), "-frames:v", "1", str(raw))
            out[f"screenshot{n}"] = crop(raw, folder / f"{stem}-screenshot{n}.jpg")
        return out
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.save(folder / f"{stem}-q60.jpg", quality=60)
        scale = 480 / image.height
        image.resize((max(1, round(image.width * scale)), 480), Image.LANCZOS).save(folder / f"{stem}-480p.jpg", quality=90)
    out["q60"], out["480p"] = folder / f"{stem}-q60.jpg", folder / f"{stem}-480p.jpg"
    out["screenshot"] = crop(path, folder / f"{stem}-screenshot.jpg")
    return out


def store(db: Database, memory: Memory, images: list[np.ndarray], name: str) -> str:
    analysis_id = uuid.uuid4().hex
    db.insert_analysis(
        AnalysisRecord(id=analysis_id, created_at=utc_now(), source=name, source_type="upload", model="default", frames=0, verdict="real")
    )
    memory.remember(analysis_id, None, images)
    return analysis_id


def rates(folder: Path) -> dict:
    media = CoreSettings.from_env().shared_folder() / "data" / "media"
    originals = sorted([*media.glob("videos/*.mp4"), *media.glob("seed/*"), *media.glob("frames/*.png")])
    originals = [p for p in originals if p.suffix.lower() in (".mp4", ".jpg", ".png")]
    db = Database(folder / "rates.sqlite")
    memory = Memory(db)
    family: dict[str, str] = {}  # analysis id -> the original file it is (a copy of)
    copies: list[tuple[str, str, str]] = []  # (copy id, original id, kind)
    for original in originals:
        original_id = store(db, memory, key_frames(original), original.name)
        family[original_id] = original.name
        for kind, path in copies_of(original, folder).items():
            copy_id = store(db, memory, key_frames(path), path.name)
            family[copy_id] = original.name
            copies.append((copy_id, original_id, kind))
    found = {analysis_id: {m["analysis_id"] for m in memory.matches(analysis_id, None)} for analysis_id in family}
    by_kind: dict[str, list[bool]] = {}
    for copy_id, original_id, kind in copies:
        by_kind.setdefault("screenshot" if kind.startswith("screenshot") else kind, []).append(original_id in found[copy_id])
    ids = sorted(family)
    different = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :] if family[a] != family[b]]
    false = [(family[a], family[b]) for a, b in different if b in found[a] or a in found[b]]
    return {
        "originals": len(originals),
        "true_matches": {kind: f"{sum(hits)}/{len(hits)}" for kind, hits in by_kind.items()},
        "true_match_rate": round(sum(sum(h) for h in by_kind.values()) / sum(len(h) for h in by_kind.values()), 4),
        "different_pairs": len(different),
        "false_matches": len(false),
        "false_match_examples": false[:5],
    }


def face_false_matches(count: int = FACES) -> dict:
    """Pairs of different face pictures (one per source group) within the threshold: aligned, centred faces are
    the hard case for a global hash, as every picture has the same layout."""
    faces = CoreSettings.from_env().shared_folder() / "data" / "faces"
    with open(faces / "manifest.csv") as handle:
        rows = list(csv.DictReader(handle))
    random.Random(0).shuffle(rows)
    picked, groups = [], set()
    for row in rows:
        group = row["group"] or row["path"]
        if group not in groups:
            groups.add(group)
            picked.append(row["path"])
        if len(picked) == count:
            break
    whole, centre = [], []
    for path in picked:
        with Image.open(faces / path) as image:
            hashes = [value for _, _, value in frame_fingerprints([np.asarray(image.convert("RGB"))])]
        if len(hashes) == 2:
            whole.append(hashes[0])
            centre.append(hashes[1])
    hashes = np.array(whole, dtype=np.uint64), np.array(centre, dtype=np.uint64)
    nearest = np.full((len(whole), len(whole)), 64, dtype=np.int64)
    for a in hashes:  # a picture is as near another as the nearer of its whole and its centre, both ways
        for b in hashes:
            nearest = np.minimum(nearest, np.bitwise_count(a[:, None] ^ b[None, :]).astype(np.int64))
    upper = np.triu_indices(len(whole), 1)
    distances = nearest[upper]
    pairs = int((distances <= MATCH_DISTANCE).sum())
    return {
        "faces": len(whole),
        "face_pairs": len(distances),
        "face_false_matches": pairs,
        "face_false_match_rate": round(pairs / max(1, len(distances)), 6),
        "face_pair_distance_p1": float(np.percentile(distances, 1)),
    }


def lookup_time(folder: Path, stored: int = STORED) -> dict:
    db = Database(folder / "lookup.sqlite")
    rng = random.Random(1)
    per_analysis = FRAMES * 2
    analyses = [f"{n:032x}" for n in range(stored // per_analysis)]
    fingerprints = []
    for analysis_id in analyses:
        for row in range(per_analysis):
            value = rng.getrandbits(64)
            fingerprints.append(
                {"analysis": analysis_id, "position": row // 2, "variant": row % 2, "hash": to_signed(value)}
                | {f"band{n}": band for n, band in enumerate(bands(value))}
            )
    with db.engine.begin() as connection:  # a bulk load, one transaction (the server writes one analysis at a time)
        connection.execute(
            text(
                "INSERT INTO analyses (id, created_at, source, source_type, model, verdict) VALUES (:id, :now, 'x', 'upload', 'default', 'real')"
            ),
            [{"id": analysis_id, "now": utc_now()} for analysis_id in analyses],
        )
        connection.execute(
            text(
                "INSERT INTO fingerprints (analysis_id, client, position, variant, hash, band0, band1, band2, band3) "
                "VALUES (:analysis, NULL, :position, :variant, :hash, :band0, :band1, :band2, :band3)"
            ),
            fingerprints,
        )
    memory = Memory(db)
    query = [np.asarray(Image.effect_noise((64, 64), 60 + n).convert("RGB")) for n in range(FRAMES)]
    timings = []
    for n in range(20):
        query_id = f"query{n}"
        db.insert_analysis(
            AnalysisRecord(id=query_id, created_at=utc_now(), source="q", source_type="upload", model="default", frames=0, verdict="fake")
        )
        memory.remember(query_id, None, query)
        started = time.perf_counter()
        memory.matches(query_id, None)
        timings.append((time.perf_counter() - started) * 1000)
        db.delete_analysis(query_id)
    with db.engine.connect() as connection:
        stored_rows = connection.exec_driver_sql("SELECT COUNT(*) FROM fingerprints").scalar()
    return {
        "stored_fingerprints": stored_rows,
        "lookup_p50_ms": round(statistics.median(timings), 2),
        "lookup_max_ms": round(max(timings), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        figures = {"match_distance": MATCH_DISTANCE, **rates(Path(folder)), **face_false_matches(), **lookup_time(Path(folder))}
    print(json.dumps(figures, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
