"""lazysi subpackage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["load_checkpoint", "MODEL_CLASSES", "CheckpointError", "read_card", "read_safetensors"]

_PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle"}


def _model_classes() -> dict[str, type[nn.Module]]:
    from .classifier import MNISTClassifier
    from .unet import UNet

    return {"UNet": UNet, "MNISTClassifier": MNISTClassifier}


MODEL_CLASSES = ("UNet", "MNISTClassifier")


class CheckpointError(ValueError):
    """A checkpoint file or its JSON card cannot be used; the message names the file and the problem."""


def read_card(path: str | Path) -> dict[str, Any]:
    """The JSON model card at ``path`` as a dict; :class:`CheckpointError` naming the file (and the
    line/column of a syntax error) when it is not valid UTF-8 JSON or not a JSON object."""
    path = Path(path)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not a valid JSON model card ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: not a valid JSON model card (not UTF-8 text)") from None
    if not isinstance(card, dict):
        raise CheckpointError(f"{path}: a model card must be a JSON object, got {type(card).__name__}")
    return card


def read_safetensors(path: str | Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of the safetensors file at ``path``; :class:`CheckpointError` naming the file when
    it is not a complete safetensors file (junk, truncated, a bad header)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=device)
    except SafetensorError as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load ``<path>.safetensors`` and its JSON card ``<path>.json``.

    ``path`` is given without extension (a trailing ``.safetensors`` or ``.json``
    is tolerated).  Only safetensors weights are accepted: pickle-based formats
    (``.pt``, ``.pth``, ``.ckpt``, ``.bin``, ...) raise :class:`ValueError`; an unreadable card or
    weights file, an unknown class or weights that do not fit the architecture raise
    :class:`CheckpointError` (a ``ValueError``) naming the file.  The
    model class is chosen from the card's ``"class"`` field and rebuilt with
    ``Class(**card["architecture"])``; the model is returned in eval mode.

    Returns:
        ``(model, card)``.
    """
    p = Path(path)
    if p.suffix.lower() in _PICKLE_SUFFIXES:
        raise ValueError(
            f"{p}: only safetensors checkpoints are accepted (got a '{p.suffix}' file; "
            "pickle-based formats are never loaded)"
        )
    if p.suffix.lower() in {".safetensors", ".json"}:
        p = p.with_suffix("")
    weights = p.with_name(p.name + ".safetensors")
    card_path = p.with_name(p.name + ".json")
    if not weights.is_file():
        raise FileNotFoundError(f"no safetensors file at {weights}")
    if not card_path.is_file():
        raise FileNotFoundError(f"no model card at {card_path}")
    card = read_card(card_path)
    classes = _model_classes()
    cls_name = card.get("class")
    if cls_name not in classes:
        raise CheckpointError(f"{card_path}: unknown model class {cls_name!r}; known: {sorted(classes)}")
    arch = card.get("architecture", {})
    if not isinstance(arch, dict):
        raise CheckpointError(f"{card_path}: 'architecture' must be a JSON object, got {type(arch).__name__}")
    try:
        model = classes[cls_name](**arch)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{card_path}: bad 'architecture' for {cls_name}: {exc}") from None
    state = read_safetensors(weights, device=map_location)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(f"{weights}: the weights do not fit the card's {cls_name} architecture "
                              f"({' '.join(line.strip() for line in first[:2])[:300]})") from None
    model.eval()
    return model, card
