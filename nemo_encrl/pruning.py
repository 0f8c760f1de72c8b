"""The pruning baselines: torch's L1-unstructured pruning of a CTC model's attention and feed-forward
weights (a fraction per layer), or of all its weights together down to a parameter count; the masks
stay applied while finetuning with CTC and are made permanent before saving.
(Whole-layer pruning is `nemo_encrl.student.cut_to_depth` applied to the teacher.)"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.nn.utils import prune

PRUNED_BLOCKS = ("self_attn", "feed_forward")


def l1_prune(model: torch.nn.Module, amount: float, blocks: tuple[str, ...] = PRUNED_BLOCKS) -> int:
    """Zero the `amount` fraction of smallest-magnitude weights of every Linear in the encoder's attention
    and feed-forward blocks (each layer on its own). Returns how many Linear layers were pruned."""
    if not 0.0 < amount < 1.0:
        raise ValueError(f"pruning amount {amount} must be in (0, 1)")
    targets = [m for name, m in model.encoder.named_modules()
               if isinstance(m, torch.nn.Linear) and any(b in name for b in blocks)]  # fmt: skip
    if not targets:
        raise ValueError(f"no Linear layers under {blocks} in {type(model.encoder).__name__}")
    for module in targets:
        prune.l1_unstructured(module, "weight", amount=amount)
    return len(targets)


def l1_prune_to_size(model: torch.nn.Module, nonzero_target: int) -> float:
    """Zero the smallest-magnitude weights of all Linear and convolution layers of the encoder and the
    CTC head together (torch's global L1-unstructured pruning) until `nonzero_target` parameters stay
    nonzero: the teacher pruned to a student's size. Returns the fraction of those weights zeroed."""
    weighted = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)
    targets = [(m, "weight") for part in (model.encoder, model.decoder) for m in part.modules() if isinstance(m, weighted)]
    prunable = sum(m.weight.numel() for m, _ in targets)
    to_zero = nonzero_parameters(model) - nonzero_target
    if not 0 < to_zero < prunable:
        raise ValueError(
            f"cannot prune {type(model).__name__} ({nonzero_parameters(model)} nonzero parameters, {prunable} in "
            f"Linear/conv weights) to {nonzero_target} nonzero parameters"
        )
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=int(to_zero))
    return to_zero / prunable


def make_pruning_permanent(model: torch.nn.Module) -> int:
    """Fold the masks into the weights (plain state dict keys again, zeros stay zeros)."""
    folded = 0
    for module in model.modules():
        if prune.is_pruned(module) and hasattr(module, "weight_mask"):
            prune.remove(module, "weight")
            folded += 1
    return folded


def nonzero_parameters(model: torch.nn.Module) -> int:
    """Nonzero parameters; while pruning masks are on, a pruned weight counts as masked (`weight`, not
    the `weight_orig` parameter torch keeps beside the mask)."""
    count = 0
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            value = getattr(module, name.removesuffix("_orig")) if name.endswith("_orig") else param
            count += int((value != 0).sum())
    return count


class MakePruningPermanent(pl.Callback):
    """At the end of training, before the .nemo is written."""

    def on_train_end(self, trainer, pl_module):
        make_pruning_permanent(pl_module)
