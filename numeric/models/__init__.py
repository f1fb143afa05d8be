"""lazysi subpackage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["load_checkpoint", "MODEL_CLASSES"]

_PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle"}


def _model_classes() -> dict[str, type[nn.Module]]:
    from .classifier import MNISTClassifier
    from .unet import UNet

    return {"UNet": UNet, "MNISTClassifier": MNISTClassifier}


MODEL_CLASSES = ("UNet", "MNISTClassifier")


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load ``<path>.safetensors`` and its JSON card ``<path>.json``.

    ``path`` is given without extension (a trailing ``.safetensors`` or ``.json``
    is tolerated).  Only safetensors weights are accepted: pickle-based formats
    (``.pt``, ``.pth``, ``.ckpt``, ``.bin``, ...) raise :class:`ValueError`.  The
    model class is chosen from the card's ``"class"`` field and rebuilt with
    ``Class(**card["architecture"])``; the model is returned in eval mode.

    Returns:
        ``(model, card)``.
    """
    from safetensors.torch import load_file

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
    card = json.loads(card_path.read_text())
    classes = _model_classes()
    cls_name = card.get("class")
    if cls_name not in classes:
        raise ValueError(f"{card_path}: unknown model class {cls_name!r}; known: {sorted(classes)}")
    model = classes[cls_name](**card.get("architecture", {}))
    state = load_file(str(weights), device=map_location)
    model.load_state_dict(state)
    model.eval()
    return model, card
