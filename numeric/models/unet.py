"""A small time-conditioned U-Net for 1x28x28 images (MNIST-sized).

The network is a velocity model ``v(t, x)``: given a time ``t`` in ``[0, 1]`` and an
image batch ``x`` of shape ``(batch, channels, 28, 28)`` it returns a tensor of
the same shape as ``x``.  In lazysi it is trained by flow matching under the
linear schedule ``alpha_t = 1 - t``, ``beta_t = t`` (``t = 0`` noise, ``t = 1``
data) to predict ``X - Z`` from ``x_t = (1 - t) Z + t X``, but the module itself
knows nothing about schedules.

Layout (defaults: ``base_channels=32``, ``channel_mults=(1, 2, 2)``)::

    conv_in                         28x28, 32 ch
    level 0: ResBlock x n  -> down  28 -> 14
    level 1: ResBlock x n  -> down  14 -> 7
    level 2: ResBlock x n           7x7
    middle : ResBlock x 2           7x7   (attention-free bottleneck)
    up path mirrors the down path with skip concatenations and
            nearest-neighbour upsampling 7 -> 14 -> 28
    GroupNorm -> SiLU -> conv_out   (zero-initialised)

Every residual block is ``GroupNorm -> SiLU -> conv3x3 -> (+ time shift) ->
GroupNorm -> SiLU -> dropout -> conv3x3`` plus a 1x1 skip projection when the
channel count changes.  Time enters through a sinusoidal embedding of ``t`` fed
to an MLP, whose output is added per channel in every block.

The constructor only takes plain keyword arguments (ints, floats, a list of ints)
so that a model can be rebuilt from a JSON card with ``UNet(**card["architecture"])``;
:meth:`UNet.config` returns that dictionary.  The module works in any floating
dtype (float32, float64, and bfloat16 under autocast).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["UNet", "ResBlock", "sinusoidal_embedding"]


def sinusoidal_embedding(t: torch.Tensor, dim: int, scale: float = 1000.0, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of times ``t`` (shape ``(batch,)``) into ``dim`` features.

    ``t`` is multiplied by ``scale`` first (so that ``t`` in ``[0, 1]`` spans the same
    range as the integer time steps of classic diffusion models), then embedded as
    ``[cos(s t w_k), sin(s t w_k)]`` with geometrically spaced frequencies
    ``w_k = max_period ** (-k / half)``.  The result has the dtype of ``t``.
    """
    if dim % 2 != 0:
        raise ValueError(f"embedding dim must be even, got {dim}")
    half = dim // 2
    k = torch.arange(half, device=t.device, dtype=t.dtype)
    freqs = torch.exp(-math.log(max_period) * k / half)
    args = (scale * t)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with ``min(groups, channels)`` groups (must divide ``channels``)."""
    g = min(groups, channels)
    if channels % g != 0:
        raise ValueError(f"norm_groups={groups} does not divide channels={channels}")
    return nn.GroupNorm(g, channels)


class ResBlock(nn.Module):
    """Pre-activation residual block with an additive time-embedding shift."""

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int, groups: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = _norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb = nn.Linear(temb_dim, out_ch)
        self.norm2 = _norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip: nn.Module = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, in_ch, H, W)``; ``temb``: ``(B, temb_dim)`` -> ``(B, out_ch, H, W)``."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(temb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class _Downsample(nn.Module):
    """Stride-2 3x3 convolution (28 -> 14 -> 7)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Upsample(nn.Module):
    """Nearest-neighbour x2 upsampling followed by a 3x3 convolution."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """Small time-conditioned U-Net, ``forward(t, x) -> v`` with ``v.shape == x.shape``.

    Args:
        in_channels: image channels (1 for MNIST); the output has the same count.
        base_channels: channels of the first level.
        channel_mults: per-level channel multipliers; ``len(channel_mults) - 1``
            downsamplings are applied, so the spatial size must be divisible by
            ``2 ** (len(channel_mults) - 1)`` (28 -> 14 -> 7 for three levels).
        num_res_blocks: residual blocks per level on the way down (the up path
            uses ``num_res_blocks`` blocks per level as well, each consuming one
            skip connection, plus one extra block taking the level's input skip).
        time_embed_dim: width of the time-embedding MLP (default ``4 * base_channels``).
        norm_groups: GroupNorm groups.
        dropout: dropout rate inside residual blocks (active only in train mode).
        time_scale: factor applied to ``t`` before the sinusoidal embedding.
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 1,
        time_embed_dim: int | None = None,
        norm_groups: int = 8,
        dropout: float = 0.0,
        time_scale: float = 1000.0,
    ) -> None:
        super().__init__()
        if time_embed_dim is None:
            time_embed_dim = 4 * base_channels
        self._config: dict[str, Any] = {
            "in_channels": int(in_channels),
            "base_channels": int(base_channels),
            "channel_mults": [int(m) for m in channel_mults],
            "num_res_blocks": int(num_res_blocks),
            "time_embed_dim": int(time_embed_dim),
            "norm_groups": int(norm_groups),
            "dropout": float(dropout),
            "time_scale": float(time_scale),
        }
        self.base_channels = base_channels
        self.time_scale = time_scale
        self.n_down = len(channel_mults) - 1

        self.time_mlp = nn.Sequential(
            nn.Linear(base_channels, time_embed_dim),
            nn.SiLU(),
            nn.Linear(time_embed_dim, time_embed_dim),
        )
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)

        # Down path: record the channel count of every skip tensor.
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        skip_chs = [base_channels]
        ch = base_channels
        for level, mult in enumerate(channel_mults):
            out_ch = base_channels * mult
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(ch, out_ch, time_embed_dim, norm_groups, dropout))
                ch = out_ch
                skip_chs.append(ch)
            self.down_blocks.append(blocks)
            if level < self.n_down:
                self.downsamples.append(_Downsample(ch))
                skip_chs.append(ch)

        self.mid = nn.ModuleList(
            [
                ResBlock(ch, ch, time_embed_dim, norm_groups, dropout),
                ResBlock(ch, ch, time_embed_dim, norm_groups, dropout),
            ]
        )

        # Up path: mirror image, one block per skip tensor.
        self.up_blocks = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            out_ch = base_channels * mult
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(ResBlock(ch + skip_chs.pop(), out_ch, time_embed_dim, norm_groups, dropout))
                ch = out_ch
            self.up_blocks.append(blocks)
            if level > 0:
                self.upsamples.append(_Upsample(ch))
        assert not skip_chs

        self.norm_out = _norm(ch, norm_groups)
        self.conv_out = nn.Conv2d(ch, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def config(self) -> dict[str, Any]:
        """Constructor arguments as a JSON-serialisable dict (``UNet(**cfg)`` rebuilds it)."""
        return dict(self._config, channel_mults=list(self._config["channel_mults"]))

    def forward(self, t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
        """Velocity at time ``t`` and state ``x``.

        Args:
            t: times in ``[0, 1]``; a Python float, a 0-d tensor, a ``(1,)`` tensor
                (all broadcast to the batch) or a ``(batch,)`` tensor.
            x: images of shape ``(batch, in_channels, H, W)`` with ``H`` and ``W``
                divisible by ``2 ** (len(channel_mults) - 1)``.

        Returns:
            A tensor of the same shape as ``x`` (dtype of ``x``, or the autocast dtype).
        """
        batch = x.shape[0]
        t = torch.as_tensor(t, device=x.device, dtype=x.dtype)
        if t.ndim == 0 or t.numel() == 1:
            t = t.reshape(1).expand(batch)
        elif t.shape != (batch,):
            raise ValueError(f"t must be scalar or of shape ({batch},), got {tuple(t.shape)}")
        temb = self.time_mlp(sinusoidal_embedding(t, self.base_channels, scale=self.time_scale))

        h = self.conv_in(x)
        skips = [h]
        for level, blocks in enumerate(self.down_blocks):
            for block in blocks:
                h = block(h, temb)
                skips.append(h)
            if level < self.n_down:
                h = self.downsamples[level](h)
                skips.append(h)

        for block in self.mid:
            h = block(h, temb)

        for i, blocks in enumerate(self.up_blocks):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), temb)
            if i < self.n_down:
                h = self.upsamples[i](h)

        return self.conv_out(F.silu(self.norm_out(h)))
