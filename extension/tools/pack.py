"""Pack the extension into a zip for the Chrome Web Store: dist/deepfake-checker-<version>.zip.

    python extension/tools/pack.py [--out DIR]

Only what the browser loads goes in (manifest, service worker, lib/, content/, popup/, options/, icons/); tests,
tools and package.json stay out. Entries are sorted and dated 1980-01-01, so the same sources give the same zip.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

EXTENSION = Path(__file__).resolve().parent.parent
ROOT = EXTENSION.parent
INCLUDED = ("manifest.json", "background.js", "lib", "content", "popup", "options", "icons")
SUFFIXES = {".json", ".js", ".html", ".css", ".png"}


def files_to_pack() -> list[Path]:
    found: list[Path] = []
    for name in INCLUDED:
        path = EXTENSION / name
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        else:
            raise SystemExit(f"error: {path} is missing")
    return sorted(found)


def check(manifest: dict, names: set[str]) -> list[str]:
    """Problems that would make the store (or the browser) refuse the package."""
    problems = []
    if manifest.get("manifest_version") != 3:
        problems.append("manifest_version must be 3")
    referenced = [manifest["background"]["service_worker"], manifest["action"]["default_popup"], manifest["options_ui"]["page"]]
    referenced += list(manifest["icons"].values()) + list(manifest["action"].get("default_icon", {}).values())
    for entry in manifest.get("web_accessible_resources", []):
        referenced += entry["resources"]
    problems += [f"{ref} is named in manifest.json but not packed" for ref in referenced if ref not in names]
    if not {"16", "32", "48", "128"} <= set(manifest["icons"]):
        problems.append("icons must include 16, 32, 48 and 128")
    return problems


def pack(out_dir: Path) -> Path:
    manifest = json.loads((EXTENSION / "manifest.json").read_text())
    files = files_to_pack()
    names = {p.relative_to(EXTENSION).as_posix() for p in files}
    problems = check(manifest, names)
    if problems:
        raise SystemExit("\n".join(f"error: {p}" for p in problems))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"deepfake-checker-{manifest['version']}.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(EXTENSION).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="folder for the zip (default: dist/)")
    args = parser.parse_args(argv)
    target = pack(args.out)
    with zipfile.ZipFile(target) as archive:
        count = len(archive.namelist())
    print(f"{target} ({count} files, {target.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
