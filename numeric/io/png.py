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

__all__ = ["write_png", "encode_png", "image_grid", "scatter_image", "upscale", "sample_image"]


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


def sample_image(samples: np.ndarray, scale: int = 4, max_images: int = 64) -> np.ndarray:
    """The picture of a run's samples: an upscaled image grid of the first ``max_images`` for image
    data (C = 1 or 3), else a scatter plot of the first two coordinates."""
    if samples.ndim == 4 and samples.shape[1] in (1, 3):
        return image_grid(samples[:max_images], scale=scale)
    return scatter_image(samples)
