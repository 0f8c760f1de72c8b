"""The pruning baseline: torch's L1-unstructured pruning of a CTC model's attention and feed-forward
weights, kept during CTC finetuning (masks stay applied) and made permanent before saving.
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


def make_pruning_permanent(model: torch.nn.Module) -> int:
    """Fold the masks into the weights (plain state dict keys again, zeros stay zeros)."""
    folded = 0
    for module in model.modules():
        if prune.is_pruned(module) and hasattr(module, "weight_mask"):
            prune.remove(module, "weight")
            folded += 1
    return folded


def nonzero_parameters(model: torch.nn.Module) -> int:
    return int(sum((p != 0).sum() for p in model.parameters()))


class MakePruningPermanent(pl.Callback):
    """At the end of training, before the .nemo is written."""

    def on_train_end(self, trainer, pl_module):
        make_pruning_permanent(pl_module)
