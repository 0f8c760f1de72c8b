"""The collapsed-lattice RNN-T distillation term (Panchapagesan et al. 2021)."""

import pytest
import torch

from nemo_encrl.losses.rnnt_kd import collapsed_lattice_logprobs, lattice_kd_loss


def _lattice(seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 6, 4, 7, generator=g, dtype=dtype)  # B=2, T=6, U+1=4, V+1=7 (blank = 6)
    targets = torch.randint(0, 6, (2, 3), generator=g)
    return logits, targets, torch.tensor([6, 4]), torch.tensor([3, 1])


def test_three_classes_sum_to_one_and_last_column_has_no_label():
    logits, targets, _, label_lens = _lattice()
    lp = collapsed_lattice_logprobs(logits, targets, label_lens, blank=6)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(lp.shape[:-1]), atol=1e-5)
    full = torch.log_softmax(logits, -1)
    assert torch.allclose(lp[0, 2, 1, 0], full[0, 2, 1, targets[0, 1]])  # p(y_2) at node (2, 1)
    assert torch.allclose(lp[..., 1], full[..., 6])  # blank
    assert lp[0, :, 3, 0].exp().max() == 0 and lp[1, :, 1, 0].exp().max() == 0  # u = U_b: no next label


def test_zero_for_a_copy_and_positive_otherwise():
    logits, targets, act_lens, label_lens = _lattice()
    assert lattice_kd_loss(logits, logits.clone(), targets, act_lens, label_lens, 6).item() == pytest.approx(0, abs=1e-6)
    assert lattice_kd_loss(logits, _lattice(1)[0], targets, act_lens, label_lens, 6).item() > 0.01


def test_sum_over_each_utterances_nodes_mean_over_the_batch():
    """The paper's per-utterance sum, reduced over the batch like NeMo's RNN-T loss (`mean_batch`)."""
    logits, targets, act_lens, label_lens = _lattice()
    teacher = _lattice(1)[0]
    s, t = (collapsed_lattice_logprobs(x, targets, label_lens, 6) for x in (logits, teacher))
    per_node = (t.exp() * (t - s)).nan_to_num().sum(-1)  # 0 * (-inf - -inf) -> nan -> 0: no next label at u = U
    first = per_node[0, :6, :4].sum()  # utterance 0: 6 frames, 3 labels -> every node
    second = per_node[1, :4, :2].sum()  # utterance 1: 4 frames, 1 label
    loss = lattice_kd_loss(logits, teacher, targets, act_lens, label_lens, 6)
    assert loss.item() == pytest.approx((first + second).item() / 2, rel=1e-5)
    one = lattice_kd_loss(logits[:1], teacher[:1], targets[:1], act_lens[:1], label_lens[:1], 6)
    assert one.item() == pytest.approx(first.item(), rel=1e-5)


def test_padding_never_counts():
    logits, targets, act_lens, label_lens = _lattice()
    teacher = _lattice(1)[0]
    base = lattice_kd_loss(logits, teacher, targets, act_lens, label_lens, 6)
    noisy = logits.clone()
    noisy[1, 4:] += 50 * torch.randn_like(noisy[1, 4:])  # frames past utterance 1's end
    noisy[1, :, 2:] += 50 * torch.randn_like(noisy[1, :, 2:])  # label positions past its U + 1
    assert lattice_kd_loss(noisy, teacher, targets, act_lens, label_lens, 6).item() == pytest.approx(base.item(), rel=1e-5)


def test_gradcheck_float64():
    logits, targets, act_lens, label_lens = _lattice(2, torch.float64)
    teacher = _lattice(3, torch.float64)[0]
    student = logits.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: lattice_kd_loss(x, teacher, targets, act_lens, label_lens, 6), (student,),
                                    eps=1e-6, atol=1e-6)  # fmt: skip
