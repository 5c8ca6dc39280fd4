"""Assemble the demo's Hugging Face Space into a folder, and optionally upload it.

    python gradio_demo/build_space.py build/space                        # assemble
    python gradio_demo/build_space.py build/space --examples DIR         # plus example media you may publish
    HF_TOKEN=hf_... python gradio_demo/build_space.py build/space --push org/deepfake-checker

The Space holds the same layout as this repository, limited to what the demo runs: `README.md` (the Space card,
from gradio_demo/README.md, whose front matter names `app_file: gradio_demo/app.py`), `requirements.txt` (from
gradio_demo/requirements.txt), `gradio_demo/` (the app's modules), `detector/` (the core) and
`model_hub/default/` (the embedded checkpoint). So `gradio_demo/app.py` finds `detector` beside it exactly as it
does in the repository. Nothing from the shared third-party data is copied.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_MODULES = ("__init__.py", "app.py", "analysis.py", "downloads.py", "examples.py", "settings.py")
CHECKPOINT_PATTERNS = ("config.json", "model.safetensors", "README.md", "*.onnx")
MEDIA_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".mp4", ".mov", ".webm"}
MARKER = ".deepfake-space-build"  # marks a folder this script made, so a rebuild may empty it
GITATTRIBUTES = "".join(
    f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in ("safetensors", "onnx", "mp4", "mov", "webm", "jpg", "png")
)


class SpaceBuildError(Exception):
    pass


def build_space(out: str | Path, examples: str | Path | None = None, allow_untrained: bool = False) -> Path:
    """Write the Space into `out` (which must be empty, missing, or an earlier build) and return it."""
    out = Path(out)
    checkpoint = ROOT / "model_hub" / "default"
    if not (checkpoint / "config.json").is_file() and not allow_untrained:
        raise SpaceBuildError(
            f"{checkpoint} holds no checkpoint: the Space would run an UNTRAINED model "
            "(train and save the default first, or pass --allow-untrained to build it anyway)"
        )
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise SpaceBuildError(f"{out} is not empty and was not made by this script: give an empty or new folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by gradio_demo/build_space.py; rebuilt from scratch each time\n")

    shutil.copy(ROOT / "gradio_demo" / "README.md", out / "README.md")
    shutil.copy(ROOT / "gradio_demo" / "requirements.txt", out / "requirements.txt")
    (out / ".gitattributes").write_text(GITATTRIBUTES)
    (out / "gradio_demo").mkdir()
    for name in APP_MODULES:
        shutil.copy(ROOT / "gradio_demo" / name, out / "gradio_demo" / name)
    shutil.copytree(ROOT / "detector", out / "detector", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if (checkpoint / "config.json").is_file():
        (out / "model_hub" / "default").mkdir(parents=True)
        for pattern in CHECKPOINT_PATTERNS:
            for file in checkpoint.glob(pattern):
                shutil.copy(file, out / "model_hub" / "default" / file.name)
    if examples:
        files = [p for p in sorted(Path(examples).iterdir()) if p.suffix.lower() in MEDIA_SUFFIXES]
        if not files:
            raise SpaceBuildError(f"{examples} holds no example media ({', '.join(sorted(MEDIA_SUFFIXES))})")
        (out / "examples").mkdir()
        for file in files:
            shutil.copy(file, out / "examples" / file.name)
    return out


def push_space(folder: Path, repo_id: str, private: bool = False) -> str:
    """Create the Space if needed and upload the folder in one commit; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="space",
        commit_message="Update the deepfake checker demo",
        ignore_patterns=[MARKER],
        delete_patterns=["gradio_demo/**", "detector/**", "model_hub/**", "examples/**"],  # files no longer built
    )
    return str(commit.commit_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Assemble (and optionally upload) the demo's Hugging Face Space.")
    parser.add_argument("out", help="folder to write the Space into (empty, new, or an earlier build)")
    parser.add_argument("--examples", help="a folder of example media you have the rights to publish")
    parser.add_argument("--allow-untrained", action="store_true", help="build even without model_hub/default/")
    parser.add_argument("--push", metavar="ORG/NAME", help="upload to this Space (needs HF_TOKEN or `hf auth login`)")
    parser.add_argument("--private", action="store_true", help="create the Space as private")
    args = parser.parse_args(argv)
    try:
        folder = build_space(args.out, args.examples, args.allow_untrained)
    except SpaceBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Space assembled in {folder}")
    if args.push:
        print(f"uploaded: {push_space(folder, args.push, args.private)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
