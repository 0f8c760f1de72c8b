"""RNN-T lattice distillation with collapsed distributions (Panchapagesan et al. 2021, arXiv 2011.06110).

At every node (t, u) of the output lattice the joint's distribution over V+1 outputs is collapsed to three
classes: the correct next label y_{u+1}, blank, and everything else. The KD term is KL(teacher || student)
of these 3-class distributions, summed over the lattice nodes every utterance really has (the paper's
definition) and averaged over the batch: the same reduction as NeMo's RNN-T loss (`mean_batch`, a sum over
each utterance's lattice), so `rnnt_kd` weighs two quantities of one scale. (A mean over nodes would be
~2000x smaller on the demo corpus: ~80 frames x ~25 tokens per utterance.) At u = U there is no next label:
that class has probability 0 and the node compares {blank, rest}.
"""

from __future__ import annotations

import torch

from nemo_encrl.losses.masking import frame_mask

_TINY = 1e-12


def collapsed_lattice_logprobs(logits: torch.Tensor, targets: torch.Tensor, label_lens: torch.Tensor,
                               blank: int) -> torch.Tensor:  # fmt: skip
    """log P over {next label, blank, rest} at every node: [B, T, U+1, 3] from joint outputs [B, T, U+1, V+1]."""
    from nemo.collections.asr.parts.k2.rnnt_logprobs import rnnt_logprobs_torch

    target, blank_lp = rnnt_logprobs_torch(logits, targets[:, : logits.shape[2] - 1].long(), blank_id=blank)
    has_next = frame_mask(label_lens, logits.shape[2])[:, None, :]  # u < U_b: a correct next label exists
    target = torch.where(has_next, target, torch.full_like(target, float("-inf")))
    emitted = torch.logaddexp(target, blank_lp)
    rest = torch.log((-torch.expm1(emitted)).clamp_min(_TINY))  # log(1 - p_label - p_blank)
    return torch.stack([target, blank_lp, rest], dim=-1)


def lattice_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                    act_lens: torch.Tensor, label_lens: torch.Tensor, blank: int) -> torch.Tensor:  # fmt: skip
    """KL(teacher || student) of the collapsed distributions, summed over each utterance's valid lattice nodes,
    averaged over the batch."""
    dtype = torch.promote_types(student_logits.dtype, torch.float32)  # float32 at least (bf16/fp16 training)
    s = collapsed_lattice_logprobs(student_logits.to(dtype), targets, label_lens, blank)
    with torch.no_grad():
        t = collapsed_lattice_logprobs(teacher_logits.to(dtype), targets, label_lens, blank)
    p = t.exp()
    # 0 * log 0 = 0: a class the teacher gives no mass (no next label at u = U) adds nothing
    kl = torch.where(p > 0, p * (t - s.clamp_min(-1e4)), torch.zeros_like(p)).sum(-1)  # [B, T, U+1]
    nodes = frame_mask(act_lens, kl.shape[1])[:, :, None] & frame_mask(label_lens + 1, kl.shape[2])[:, None, :]
    return (kl * nodes).sum((1, 2)).mean()
