"""CLIP-style contrastive alignment (EncRL's main term): the student's utterance embedding must pick out
its own teacher embedding among all others in the batch, and vice versa.

Under DDP the negatives are the whole global batch: embeddings are all-gathered (sizes may differ per
rank), and only the local rows keep their gradient, which Lightning's DDP gradient averaging then
combines exactly as a single process over the global batch would.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from nemo_encrl.losses.masking import frame_mask, masked_mean_pool


def gather_with_local_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All ranks' rows of x (first dim may differ per rank); returns (gathered, offset of our rows)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    world, rank = dist.get_world_size(), dist.get_rank()
    size = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    sizes = [int(s.item()) for s in sizes]
    padded = torch.zeros((max(sizes), *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[: x.shape[0]] = x.detach()
    chunks = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(chunks, padded)
    chunks = [c[:n] for c, n in zip(chunks, sizes)]
    chunks[rank] = x  # the local rows carry the gradient
    return torch.cat(chunks), sum(sizes[:rank])


def clip_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float | torch.Tensor = 0.07,
              gather: bool = True) -> torch.Tensor:  # fmt: skip
    """Symmetric InfoNCE over [N, D] paired embeddings (row i of each is the same utterance)."""
    s = F.normalize(student.float(), dim=-1)
    t = F.normalize(teacher.float(), dim=-1)
    if gather:
        s_all, offset = gather_with_local_grad(s)
        t_all, _ = gather_with_local_grad(t)
    else:
        s_all, t_all, offset = s, t, 0
    labels = torch.arange(s.shape[0], device=s.device) + offset
    s2t = s @ t_all.T / temperature
    t2s = t @ s_all.T / temperature
    return 0.5 * (F.cross_entropy(s2t, labels) + F.cross_entropy(t2s, labels))


def utterance_clip_loss(student: torch.Tensor, teacher: torch.Tensor, lengths: torch.Tensor,
                        temperature: float | torch.Tensor = 0.07, gather: bool = True) -> torch.Tensor:  # fmt: skip
    """[B, T, D] encoder outputs, mean-pooled over valid frames, then `clip_loss` (the paper's setting)."""
    return clip_loss(masked_mean_pool(student, lengths), masked_mean_pool(teacher, lengths), temperature, gather)


def frame_clip_loss(student: torch.Tensor, teacher: torch.Tensor, lengths: torch.Tensor,
                    temperature: float | torch.Tensor = 0.07, max_frames: int = 2048,
                    generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """Frame-level variant: each valid frame's negatives are the other sampled frames of the batch
    (local to the rank; `max_frames` bounds the N x N similarity matrix)."""
    mask = frame_mask(lengths, student.shape[1])
    s, t = student[mask], teacher[mask]
    if s.shape[0] > max_frames:
        keep = torch.randperm(s.shape[0], device=s.device, generator=generator)[:max_frames]
        s, t = s[keep], t[keep]
    return clip_loss(s, t, temperature, gather=False)
