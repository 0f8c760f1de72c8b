"""The alignment losses on hand-made tensors: they must reward matching pairs and ignore padding."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nemo_encrl.losses import (
    clip_loss, ctc_kl_loss, frame_clip_loss, masked_mean_pool, masked_mse, utterance_clip_loss,
)  # fmt: skip

torch.manual_seed(0)


def _pad_with_garbage(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    for b, n in enumerate(lengths.tolist()):
        y[b, n:] = torch.randn_like(y[b, n:]) * 100
    return y


def test_clip_identical_pairs_minimal_shuffled_larger():
    emb = torch.eye(8, 16)  # orthogonal utterance embeddings
    same = clip_loss(emb, emb, 0.07, gather=False)
    assert same < 1e-4  # log(1 + 7 e^{-1/0.07})
    shuffled = clip_loss(emb, emb[torch.randperm(8)], 0.07, gather=False)
    assert shuffled > 1.0
    noisy = clip_loss(emb, emb + 0.3 * torch.randn(8, 16), 0.07, gather=False)
    assert same < noisy < shuffled


def test_clip_is_scale_invariant_and_symmetric():
    s, t = torch.randn(6, 10), torch.randn(6, 10)
    assert torch.allclose(clip_loss(s, t, gather=False), clip_loss(3 * s, 0.5 * t, gather=False), atol=1e-5)
    assert torch.allclose(clip_loss(s, t, gather=False), clip_loss(t, s, gather=False), atol=1e-6)


def test_padding_does_not_change_losses():
    B, T, D, V = 4, 12, 8, 5
    lengths = torch.tensor([12, 9, 5, 7])
    s, t = torch.randn(B, T, D), torch.randn(B, T, D)
    s_lp, t_lp = torch.randn(B, T, V).log_softmax(-1), torch.randn(B, T, V).log_softmax(-1)
    ps, pt = _pad_with_garbage(s, lengths), _pad_with_garbage(t, lengths)
    assert torch.allclose(utterance_clip_loss(s, t, lengths, gather=False), utterance_clip_loss(ps, pt, lengths, gather=False))
    assert torch.allclose(masked_mse(s, t, lengths), masked_mse(ps, pt, lengths))
    assert torch.allclose(
        ctc_kl_loss(s_lp, t_lp, lengths, 2.0),
        ctc_kl_loss(_pad_with_garbage(s_lp, lengths), _pad_with_garbage(t_lp, lengths), lengths, 2.0),
    )
    g = torch.Generator().manual_seed(1)
    a = frame_clip_loss(s, t, lengths, generator=g)
    g = torch.Generator().manual_seed(1)
    assert torch.allclose(a, frame_clip_loss(ps, pt, lengths, generator=g))
    # and pooling really uses only the valid frames
    assert torch.allclose(masked_mean_pool(s, lengths)[2], s[2, :5].mean(0))


def test_mse_and_kl_zero_iff_identical():
    lengths = torch.tensor([6, 3])
    x = torch.randn(2, 6, 4)
    assert masked_mse(x, x, lengths) == 0
    assert masked_mse(x, x + 1, lengths) == pytest.approx(1.0)
    lp = torch.randn(2, 6, 5).log_softmax(-1)
    assert ctc_kl_loss(lp, lp, lengths).abs() < 1e-6
    assert ctc_kl_loss(lp, torch.randn(2, 6, 5).log_softmax(-1), lengths) > 0.01
    with pytest.raises(ValueError, match="shapes differ"):
        masked_mse(x, x[:, :, :3], lengths)


def test_frame_clip_rewards_aligned_frames():
    lengths = torch.tensor([10, 10])
    t = torch.randn(2, 10, 32)
    aligned = frame_clip_loss(t + 0.05 * torch.randn_like(t), t, lengths)
    shifted = frame_clip_loss(torch.roll(t, 3, dims=1), t, lengths)
    assert aligned < shifted


def test_gradient_reaches_student_only():
    s = torch.randn(4, 6, 8, requires_grad=True)
    t = torch.randn(4, 6, 8)  # the teacher side is a constant to the losses
    lengths = torch.tensor([6, 5, 4, 3])
    (utterance_clip_loss(s, t, lengths, gather=False) + masked_mse(s, t, lengths)).backward()
    assert s.grad is not None and s.grad[0].abs().sum() > 0
    assert s.grad[3, 3:].abs().sum() == 0  # padding frames get no gradient


def test_learnable_temperature_gets_gradient():
    log_inv_t = torch.tensor(2.0, requires_grad=True)
    clip_loss(torch.randn(5, 4), torch.randn(5, 4), torch.exp(-log_inv_t), gather=False).backward()
    assert log_inv_t.grad is not None and log_inv_t.grad != 0


def _ddp_worker(rank: int, world: int, port: int, s: torch.Tensor, t: torch.Tensor, out: dict):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        n = s.shape[0] // world
        local_s = s[rank * n : (rank + 1) * n].clone().requires_grad_(True)
        loss = clip_loss(local_s, t[rank * n : (rank + 1) * n], 0.07, gather=True)
        loss.backward()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        out[rank] = (float(mean) / world, float(local_s.grad.abs().sum()))
    finally:
        dist.destroy_process_group()


def test_ddp_gathered_negatives_equal_single_process_loss():
    """2 CPU processes (gloo), each with half the batch: the rank-averaged loss is the global-batch loss."""
    s, t = torch.randn(8, 16), torch.randn(8, 16)
    single = float(clip_loss(s, t, 0.07, gather=False))
    local_only = float(clip_loss(s[:4], t[:4], 0.07, gather=False) + clip_loss(s[4:], t[4:], 0.07, gather=False)) / 2
    with mp.Manager() as manager:
        out = manager.dict()
        port = 29500 + os.getpid() % 1000
        mp.spawn(_ddp_worker, args=(2, port, s, t, out), nprocs=2, join=True)
        results = dict(out)
    assert results[0][0] == pytest.approx(single, rel=1e-5)
    assert results[1][0] == pytest.approx(single, rel=1e-5)
    assert abs(local_only - single) > 1e-3  # without gathering the negatives the loss would differ
    assert results[0][1] > 0 and results[1][1] > 0  # local rows keep their gradient
