"""The memory of media judged (detector/memory.py, server/memory.py): how often copies are recognised, how often
different media is taken for the same, each with and without the close-up guard, and how long a lookup takes among
100,000 stored fingerprints.

    python -m bench.memory [--json] [--faces N] [--face-copies N]

1. True matches: each video of the shared media (data/media) and its copies as they circulate (re-encoded at CRF 32,
   rescaled to 480 px high, its first second cut, and screenshot-like crops of three key frames: 5 % cut from each
   side, JPEG), each image and its copies (JPEG quality 30, 60 and 90, 480 px high, half size, the same crop). Every
   file is stored as the server stores an analysis (8 key frames, their faces found with the core's face detector
   for the close-up guard, through `Memory` on a SQLite database) and each copy is looked up: recognised when the
   original is among its matches. Also the same image copies of the first --face-copies face pictures below.
2. False matches: every pair of different shared media files that match (same lookups), and, at scale, every pair of
   --faces face pictures of data/faces (one per source group) whose single-frame distance is under the threshold,
   and of those, the pairs the close-up guard lets through.
3. Lookup time: 100,000 fingerprints stored (random hashes of 6,250 analyses of 8 frames, whole and centre), then
   `Memory.matches` of an 8-frame analysis, median of 20.
"""

from __future__ import annotations

import argparse
import csv
import io
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

from detector.faces import create_face_detector
from detector.keyframes import select_key_frames
from detector.media import ImageMedia, open_media
from detector.memory import (
    CLOSE_UP_SHARE,
    FINE_MATCH_DISTANCE,
    MATCH_DISTANCE,
    Fingerprint,
    bands,
    frame_fingerprints,
    hamming,
    to_signed,
)
from detector.settings import CoreSettings
from server.db import Database, utc_now
from server.memory import Memory
from server.records import AnalysisRecord

FRAMES = 8
FACES = 2000
FACE_COPIES = 200
STORED = 100_000
IMAGE_COPIES = ("q30", "q60", "q90", "480p", "half", "crop90")


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
        copies = image_copies(image.convert("RGB"))
    for kind, copy in copies.items():
        out[kind] = folder / f"{stem}-{kind}.jpg"
        copy.save(out[kind], quality=int(kind[1:]) if kind.startswith("q") else 90)
    return out


def image_copies(image: Image.Image) -> dict[str, Image.Image]:
    """An image as it circulates (`IMAGE_COPIES`): JPEG qualities (saved by the caller), 480 px high, half size,
    5 % cut from each side."""
    width, height = image.size
    scale = 480 / height
    return {
        "q30": image,
        "q60": image,
        "q90": image,
        "480p": image.resize((max(1, round(width * scale)), 480), Image.LANCZOS),
        "half": image.resize((max(1, width // 2), max(1, height // 2)), Image.LANCZOS),
        "crop90": image.crop((width // 20, height // 20, width - width // 20, height - height // 20)),
    }


def face_share(image: np.ndarray) -> float:
    """The largest face's share of a frame, with the core's face detector (what the Report's boxes give a shell)."""
    height, width = image.shape[:2]
    faces = create_face_detector("auto", settings=CoreSettings.from_env()).detect(image)
    return max((face.w * face.h for face in faces), default=0.0) / max(1, width * height)


def store(db: Database, images: list[np.ndarray], name: str) -> str:
    analysis_id = uuid.uuid4().hex
    db.insert_analysis(
        AnalysisRecord(id=analysis_id, created_at=utc_now(), source=name, source_type="upload", model="default", frames=0, verdict="real")
    )
    db.insert_fingerprints(analysis_id, None, frame_fingerprints(images, [face_share(image) for image in images]))
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
        original_id = store(db, key_frames(original), original.name)
        family[original_id] = original.name
        for kind, path in copies_of(original, folder).items():
            copy_id = store(db, key_frames(path), path.name)
            family[copy_id] = original.name
            copies.append((copy_id, original_id, kind))
    figures: dict = {"originals": len(originals)}
    for guard, suffix in ((False, "_unguarded"), (True, "")):
        found = {a: {m.analysis_id for m in memory.matches(a, None, guard=guard)} for a in family}
        by_kind: dict[str, list[bool]] = {}
        for copy_id, original_id, kind in copies:
            by_kind.setdefault("screenshot" if kind.startswith("screenshot") else kind, []).append(original_id in found[copy_id])
        ids = sorted(family)
        different = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :] if family[a] != family[b]]
        false = [(family[a], family[b]) for a, b in different if b in found[a] or a in found[b]]
        figures |= {
            f"true_matches{suffix}": {kind: f"{sum(hits)}/{len(hits)}" for kind, hits in by_kind.items()},
            f"true_match_rate{suffix}": round(sum(sum(h) for h in by_kind.values()) / sum(len(h) for h in by_kind.values()), 4),
            "different_pairs": len(different),
            f"false_matches{suffix}": len(false),
            f"false_match_examples{suffix}": false[:5],
        }
    return figures


def face_pictures(count: int) -> list[Path]:
    """`count` face pictures of data/faces, one per source group (a group is one person or one source video)."""
    faces = CoreSettings.from_env().shared_folder() / "data" / "faces"
    with open(faces / "manifest.csv") as handle:
        rows = list(csv.DictReader(handle))
    random.Random(0).shuffle(rows)
    picked, groups = [], set()
    for row in rows:
        group = row["group"] or row["path"]
        if group not in groups:
            groups.add(group)
            picked.append(faces / row["path"])
        if len(picked) == count:
            break
    return picked


def single_frame(image: np.ndarray) -> list[Fingerprint]:
    return frame_fingerprints([image], [face_share(image)])


def same_picture(a: list[Fingerprint], b: list[Fingerprint], guard: bool) -> bool:
    """Two one-frame analyses match (as `close_analyses` judges one frame against one): the nearer of whole and
    centre within `MATCH_DISTANCE` and, with the guard and both close-ups, the nearer fine hashes too."""
    if not a or not b or min(hamming(x.hash, y.hash) for x in a for y in b) > MATCH_DISTANCE:
        return False
    fine_a, fine_b = [x.fine for x in a if x.fine is not None], [y.fine for y in b if y.fine is not None]
    if not guard or not fine_a or not fine_b:
        return True
    return min(hamming(x, y) for x in fine_a for y in fine_b) <= FINE_MATCH_DISTANCE


def face_matches(count: int = FACES, copies: int = FACE_COPIES) -> dict:
    """Aligned, centred faces are the hard case for a global hash, as every picture has the same layout. False
    matches: every pair of `count` different face pictures, without and with the close-up guard; true matches: the
    `IMAGE_COPIES` of the first `copies` of them, through a JPEG file each."""
    pictures = face_pictures(count)
    prints = []
    for path in pictures:
        with Image.open(path) as image:
            prints.append(single_frame(np.asarray(image.convert("RGB"))))
    prints = [p for p in prints if len(p) == 2]
    whole = np.array([p[0].hash for p in prints], dtype=np.uint64)
    centre = np.array([p[1].hash for p in prints], dtype=np.uint64)
    nearest = np.full((len(prints), len(prints)), 64, dtype=np.int64)
    for a in (whole, centre):  # a picture is as near another as the nearer of its whole and its centre, both ways
        for b in (whole, centre):
            nearest = np.minimum(nearest, np.bitwise_count(a[:, None] ^ b[None, :]).astype(np.int64))
    upper = np.triu_indices(len(prints), 1)
    distances = nearest[upper]
    passing = np.nonzero(distances <= MATCH_DISTANCE)[0]
    guarded = sum(same_picture(prints[upper[0][k]], prints[upper[1][k]], True) for k in passing)
    true: dict[str, list[bool]] = {kind: [] for kind in IMAGE_COPIES}
    true_unguarded: dict[str, list[bool]] = {kind: [] for kind in IMAGE_COPIES}
    for path in pictures[:copies]:
        with Image.open(path) as image:
            original = single_frame(np.asarray(image.convert("RGB")))
            for kind, copy in image_copies(image.convert("RGB")).items():
                buffer = io.BytesIO()
                copy.save(buffer, "JPEG", quality=int(kind[1:]) if kind.startswith("q") else 90)
                with Image.open(buffer) as decoded:
                    again = single_frame(np.asarray(decoded.convert("RGB")))
                true[kind].append(same_picture(original, again, True))
                true_unguarded[kind].append(same_picture(original, again, False))
    close_ups = sum(all(row.fine is not None for row in p) for p in prints)
    return {
        "faces": len(prints),
        "face_close_ups": close_ups,
        "face_pairs": len(distances),
        "face_false_matches_unguarded": len(passing),
        "face_false_match_rate_unguarded": float(f"{len(passing) / max(1, len(distances)):.3g}"),
        "face_false_matches": guarded,
        "face_false_match_rate": float(f"{guarded / max(1, len(distances)):.3g}"),
        "face_pair_distance_p1": float(np.percentile(distances, 1)),
        "face_true_matches_unguarded": {kind: f"{sum(h)}/{len(h)}" for kind, h in true_unguarded.items()},
        "face_true_matches": {kind: f"{sum(h)}/{len(h)}" for kind, h in true.items()},
        "face_true_match_rate_unguarded": round(sum(map(sum, true_unguarded.values())) / max(1, sum(map(len, true.values()))), 4),
        "face_true_match_rate": round(sum(map(sum, true.values())) / max(1, sum(map(len, true.values()))), 4),
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
    parser.add_argument("--faces", type=int, default=FACES, help="face pictures whose pairs are compared")
    parser.add_argument("--face-copies", type=int, default=FACE_COPIES, help="face pictures whose copies are looked up")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        figures = {
            "match_distance": MATCH_DISTANCE,
            "close_up_share": CLOSE_UP_SHARE,
            "fine_match_distance": FINE_MATCH_DISTANCE,
            **rates(Path(folder)),
            **face_matches(args.faces, args.face_copies),
            **lookup_time(Path(folder)),
        }
    print(json.dumps(figures, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
