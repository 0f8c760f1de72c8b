"""Masked mean-squared error between student and teacher sequences (outputs or representations)."""

from __future__ import annotations

import torch

from nemo_encrl.losses.masking import frame_mask


def masked_mse(student: torch.Tensor, teacher: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B, T, D] pair -> mean squared error over valid frames and all D (padding ignored)."""
    if student.shape != teacher.shape:
        raise ValueError(f"masked_mse: shapes differ, student {tuple(student.shape)} vs teacher {tuple(teacher.shape)}")
    mask = frame_mask(lengths, student.shape[1]).unsqueeze(-1).to(student.dtype)
    sq = (student.float() - teacher.float()) ** 2 * mask
    return sq.sum() / (mask.sum() * student.shape[-1]).clamp_min(1.0)
