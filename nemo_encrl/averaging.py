"""Checkpoint averaging: one model whose weights are the mean of several checkpoints of one run.

The usual last step of an ASR recipe (NeMo's scripts/checkpoint_averaging, ESPnet's
average_checkpoints): the best and last checkpoints near the end of a decaying schedule sit around
the same minimum, and their mean usually scores a little better than any of them. NeMo's script is not
in the pip package, so this takes Lightning's checkpoints and a `.nemo` of the same model (config and
tokenizer) and writes a `.nemo`.
"""

from __future__ import annotations

from pathlib import Path

import torch


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return path


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    _existing(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{path} is not a Lightning checkpoint (no 'state_dict' in it)")
    return ckpt["state_dict"]


def average_state_dicts(paths: list[str | Path]) -> dict[str, torch.Tensor]:
    """Mean of every floating-point tensor; integer buffers (step counters) come from the last file."""
    if not paths:
        raise ValueError("no checkpoints to average")
    paths = [Path(p) for p in paths]
    first = _state_dict(paths[0])
    sums = {k: v.double() if v.is_floating_point() else v for k, v in first.items()}
    for path in paths[1:]:
        sd = _state_dict(path)
        if sd.keys() != first.keys():
            odd = sorted(sd.keys() ^ first.keys())[:3]
            raise ValueError(f"{path} has other weights than {paths[0]} (e.g. {odd}): not the same model")
        for k, v in sd.items():
            if v.shape != first[k].shape:
                raise ValueError(f"{path}: '{k}' has shape {tuple(v.shape)}, {paths[0]} has {tuple(first[k].shape)}")
            sums[k] = (sums[k] + v.double()) if v.is_floating_point() else v
    return {k: (v / len(paths)).to(first[k].dtype) if first[k].is_floating_point() else v for k, v in sums.items()}


def model_from_checkpoint(path: str | Path):
    """The model a Lightning checkpoint of a NeMo run describes (NeMo keeps the whole model config in its
    hyper-parameters, `target` naming the class), built without its data loaders; weights not loaded."""
    import importlib

    from nemo.core.classes.modelPT import ModelPT
    from omegaconf import OmegaConf

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    cfg = (ckpt.get("hyper_parameters") or {}).get("cfg") if isinstance(ckpt, dict) else None
    if cfg is None or "target" not in cfg:
        raise ValueError(f"{path} holds no NeMo model config (hyper_parameters.cfg.target): pass --like a .nemo")
    module, _, name = str(cfg["target"]).rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    ModelPT._set_model_restore_state(is_being_restored=True)  # as restore_from: no data loaders are built
    try:
        return cls(cfg=OmegaConf.create(cfg))
    finally:
        ModelPT._set_model_restore_state(is_being_restored=False)


def average_checkpoints(checkpoints: list[str | Path], like: str | Path | None, out: str | Path) -> Path:
    """`like` (a .nemo of the same architecture; default: the model the first checkpoint's config describes)
    with the averaged weights of `checkpoints`, saved to `out`."""
    from nemo_encrl.teacher import load_asr_model

    out = Path(out)
    if like is not None:  # checks the file and names it in any error before the averaging starts
        model = load_asr_model(path=like, what="model")
    else:
        model = model_from_checkpoint(_existing(Path(checkpoints[0])))
    averaged = average_state_dicts(checkpoints)
    try:
        model.load_state_dict(averaged, strict=True)
    except RuntimeError as e:
        raise ValueError(f"the checkpoints do not fit {like or checkpoints[0]}: {e}") from e
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_to(str(out))
    return out
