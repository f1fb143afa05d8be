"""PNG output without an imaging package: image grids of samples, scatter plots of vectors.

``write_png`` writes 8-bit greyscale or RGB with zlib + struct; ``image_grid`` tiles ``(n, C, H, W)``
images in [-1, 1] and upscales them by nearest neighbour so a 28 px digit is readable.
"""
from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["write_png", "encode_png", "image_grid", "scatter_image", "upscale", "sample_image", "label_row", "with_label"]


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of an 8-bit greyscale ``(H, W)`` or RGB ``(H, W, 3)`` array."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ValueError(f"need uint8 (H, W) or (H, W, 3), got {pixels.dtype} {pixels.shape}")
    h, w = pixels.shape[:2]
    colour = 0 if pixels.ndim == 2 else 2
    raw = b"".join(b"\x00" + pixels[r].tobytes() for r in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
    return png + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write ``pixels`` (see :func:`encode_png`) to ``path``."""
    Path(path).write_bytes(encode_png(pixels))


def upscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of an ``(H, W)`` or ``(H, W, C)`` image by an integer factor."""
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"scale factor must be a positive int, got {factor!r}")
    return img if factor == 1 else img.repeat(factor, axis=0).repeat(factor, axis=1)


def image_grid(x: np.ndarray, pad: int = 2, scale: int = 1) -> np.ndarray:
    """``(n, C, H, W)`` images in [-1, 1] (C = 1 or 3) -> one uint8 grid, ``ceil(sqrt(n))`` columns,
    each image upscaled ``scale`` times (nearest neighbour)."""
    n, c, h, w = x.shape
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    img = np.clip((x + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    img = img.repeat(scale, axis=2).repeat(scale, axis=3) if scale > 1 else img
    h, w = h * scale, w * scale
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = img[i].transpose(1, 2, 0)
    return grid[..., 0] if c == 1 else grid


def scatter_image(x: np.ndarray, size: int = 256) -> np.ndarray:
    """Scatter plot of the first two coordinates of ``(n, D)`` vectors (D >= 1) as a uint8 image."""
    pts = x.reshape(x.shape[0], -1)
    pts = np.concatenate([pts, np.zeros_like(pts[:, :1])], 1)[:, :2] if pts.shape[1] == 1 else pts[:, :2]
    lo, hi = pts.min(0), pts.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    ij = np.clip(((pts - lo) / span * (size - 9) + 4).astype(int), 0, size - 1)
    img = np.full((size, size), 255, dtype=np.uint8)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            img[np.clip(size - 1 - ij[:, 1] + dy, 0, size - 1), np.clip(ij[:, 0] + dx, 0, size - 1)] = 0
    return img


def sample_image(samples: np.ndarray, scale: int = 4, max_images: int = 64, label: str | None = None) -> np.ndarray:
    """The picture of a run's samples: an upscaled image grid of the first ``max_images`` for image
    data (C = 1 or 3), else a scatter plot of the first two coordinates; ``label``: a text row
    underneath (greyscale pictures)."""
    if samples.ndim == 4 and samples.shape[1] in (1, 3):
        img = image_grid(samples[:max_images], scale=scale)
    else:
        img = scatter_image(samples)
    return with_label(img, label) if label is not None and img.ndim == 2 else img


#: a 3 x 5 pixel font (rows top to bottom, 3 bits each, MSB left) for labels under an image grid
_FONT = {
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7), "4": (5, 5, 7, 1, 1),
    "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 2, 2), "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7),
    "a": (2, 5, 7, 5, 5), "b": (6, 5, 6, 5, 6), "c": (3, 4, 4, 4, 3), "d": (6, 5, 5, 5, 6), "e": (7, 4, 6, 4, 7),
    "f": (7, 4, 6, 4, 4), "g": (3, 4, 5, 5, 3), "h": (5, 5, 7, 5, 5), "i": (7, 2, 2, 2, 7), "j": (1, 1, 1, 5, 2),
    "k": (5, 5, 6, 5, 5), "l": (4, 4, 4, 4, 7), "m": (5, 7, 7, 5, 5), "n": (6, 5, 5, 5, 5), "o": (2, 5, 5, 5, 2),
    "p": (6, 5, 6, 4, 4), "q": (2, 5, 5, 6, 3), "r": (6, 5, 6, 5, 5), "s": (3, 4, 2, 1, 6), "t": (7, 2, 2, 2, 2),
    "u": (5, 5, 5, 5, 7), "v": (5, 5, 5, 5, 2), "w": (5, 5, 7, 7, 5), "x": (5, 5, 2, 5, 5), "y": (5, 5, 2, 2, 2),
    "z": (7, 1, 2, 4, 7), "-": (0, 0, 7, 0, 0), ".": (0, 0, 0, 0, 2), "=": (0, 7, 0, 7, 0), " ": (0, 0, 0, 0, 0),
    "@": (2, 5, 7, 4, 3), "+": (0, 2, 7, 2, 0), ",": (0, 0, 0, 2, 4), "/": (1, 1, 2, 4, 4), ":": (0, 2, 0, 2, 0),
    "(": (1, 2, 2, 2, 1), ")": (4, 2, 2, 2, 4), "_": (0, 0, 0, 0, 7),
}


def label_row(text: str, width: int, scale: int = 2, background: int = 255, ink: int = 0) -> np.ndarray:
    """A uint8 row of ``width`` pixels with ``text`` in a 3 x 5 pixel font (lower-case letters,
    digits and ``-.=@+,/:()_``; other characters raise), upscaled ``scale`` times."""
    unknown = sorted({c for c in text.lower() if c not in _FONT})
    if unknown:
        raise ValueError(f"label characters not in the font: {''.join(unknown)!r}")
    glyphs = [np.array([[(row >> (2 - k)) & 1 for k in range(3)] for row in _FONT[c]], dtype=np.uint8) for c in text.lower()]
    line = np.concatenate(sum(([g, np.zeros((5, 1), np.uint8)] for g in glyphs), [np.zeros((5, 1), np.uint8)]), 1) \
        if glyphs else np.zeros((5, 1), np.uint8)
    line = upscale(line, scale)
    row = np.full((line.shape[0] + 2 * scale, width), background, dtype=np.uint8)
    w = min(width, line.shape[1])
    row[scale:scale + line.shape[0], :w] = np.where(line[:, :w] == 1, ink, background)
    return row


def with_label(img: np.ndarray, text: str, scale: int = 2) -> np.ndarray:
    """``img`` (greyscale) with a label row underneath."""
    return np.concatenate([img, label_row(text, img.shape[1], scale)], 0)
