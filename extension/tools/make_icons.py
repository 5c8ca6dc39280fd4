"""Draw the extension's icons (icons/icon{16,32,48,128}.png) with Pillow: a magnifying glass over a face outline.

Drawn at 8x and downscaled with a good filter, so every size is sharp and anti-aliased; no third-party art.
Run: .venv/bin/python extension/tools/make_icons.py (the PNGs are committed; rerun only to change them)
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

SIZES = (16, 32, 48, 128)
SCALE = 8
BLUE_TOP = (31, 111, 235)
BLUE_BOTTOM = (13, 65, 157)
WHITE = (255, 255, 255, 255)
RED = (248, 81, 73, 255)


def draw(size: int) -> Image.Image:
    big = size * SCALE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    # Rounded square with a vertical gradient.
    gradient = Image.new("RGBA", (big, big))
    pixels = gradient.load()
    for y in range(big):
        t = y / (big - 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(BLUE_TOP, BLUE_BOTTOM)) + (255,)
        for x in range(big):
            pixels[x, y] = colour
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, big - 1, big - 1), radius=round(big * 0.22), fill=255)
    image.paste(gradient, (0, 0), mask)

    d = ImageDraw.Draw(image)
    small = size <= 16  # fewer, bolder strokes at the smallest size
    line = round(big * (0.085 if small else 0.06))
    # Lens of the magnifying glass.
    cx, cy, r = big * 0.43, big * 0.43, big * (0.27 if small else 0.25)
    d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=WHITE, width=line)
    # Handle.
    hx, hy = cx + r * 0.72, cy + r * 0.72
    d.line((hx, hy, big * 0.82, big * 0.82), fill=WHITE, width=round(line * 1.5))
    d.ellipse(
        (big * 0.82 - line * 0.75, big * 0.82 - line * 0.75, big * 0.82 + line * 0.75, big * 0.82 + line * 0.75), fill=WHITE
    )
    if not small:
        # A face inside the lens: two eyes and a mouth.
        eye = big * 0.035
        for ex in (cx - r * 0.35, cx + r * 0.35):
            d.ellipse((ex - eye, cy - r * 0.25 - eye, ex + eye, cy - r * 0.25 + eye), fill=WHITE)
        d.arc((cx - r * 0.45, cy - r * 0.15, cx + r * 0.45, cy + r * 0.5), start=20, end=160, fill=WHITE, width=round(line * 0.7))
    # A red dot: "something may be off".
    dot = big * (0.13 if small else 0.11)
    d.ellipse(
        (big * 0.78 - dot, big * 0.2 - dot, big * 0.78 + dot, big * 0.2 + dot), fill=RED, outline=WHITE, width=round(line * 0.5)
    )
    return image.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "icons"
    out.mkdir(exist_ok=True)
    for size in SIZES:
        path = out / f"icon{size}.png"
        if size == 128:
            # The Chrome Web Store asks for 96x96 artwork with 16 px of transparent padding in the 128 icon.
            icon = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
            icon.paste(draw(96), (16, 16))
        else:
            icon = draw(size)
        icon.save(path, optimize=True)
        print(path)


if __name__ == "__main__":
    main()
