"""Classic logit distillation on CTC posteriors, for comparison with EncRL's CLIP + MSE."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nemo_encrl.losses.masking import frame_mask


def ctc_kl_loss(student_log_probs: torch.Tensor, teacher_log_probs: torch.Tensor, lengths: torch.Tensor,
                temperature: float = 1.0) -> torch.Tensor:  # fmt: skip
    """KL(teacher_T || student_T) per valid frame, averaged over frames, scaled by T^2 (Hinton et al.)."""
    s = F.log_softmax(student_log_probs.float() / temperature, dim=-1)
    t = F.log_softmax(teacher_log_probs.float() / temperature, dim=-1)
    kl = (t.exp() * (t - s)).sum(-1)  # [B, T]
    mask = frame_mask(lengths, kl.shape[1]).to(kl.dtype)
    return (kl * mask).sum() / mask.sum().clamp_min(1.0) * temperature**2
