"""The vectorised RNN-T loss against NeMo's own (values and gradients), float64 gradcheck, NeMo registration."""

import pytest
import torch

from nemo_encrl.losses.rnnt_torch import LOSS_NAME, register_rnnt_loss, rnnt_loss_vectorized


def _lattice(seed: int, batch=3, frames=17, labels=5, vocab=9):
    g = torch.Generator().manual_seed(seed)
    acts = torch.randn(batch, frames, labels + 1, vocab + 1, generator=g) * 3
    targets = torch.randint(0, vocab, (batch, labels), generator=g)
    act_lens = torch.tensor([frames, frames - 4, 6])[:batch]
    label_lens = torch.tensor([labels, 2, 0])[:batch]  # one utterance with no labels at all
    return acts, targets, act_lens, label_lens, vocab


def _nemo_loss(name: str, vocab: int):
    from nemo.collections.asr.losses.rnnt import RNNTLoss

    register_rnnt_loss()
    return RNNTLoss(num_classes=vocab, reduction=None, loss_name=name)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("reference", ["pytorch", "warprnnt_numba"])
def test_equals_nemo_losses_and_gradients(seed, reference):
    acts, targets, act_lens, label_lens, vocab = _lattice(seed)
    results = {}
    for name in (LOSS_NAME, reference):
        a = acts.clone().requires_grad_()
        loss = _nemo_loss(name, vocab)(log_probs=a, targets=targets, input_lengths=act_lens, target_lengths=label_lens)
        loss.sum().backward()
        results[name] = (loss.detach(), a.grad)
    (ours, our_grad), (ref, ref_grad) = results[LOSS_NAME], results[reference]
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-4), (ours, ref)
    assert torch.allclose(our_grad, ref_grad, atol=1e-5)
    assert our_grad[1, act_lens[1]:].abs().max() == 0  # frames past an utterance's end get no gradient


def test_gradcheck_float64():
    acts, targets, act_lens, label_lens, vocab = _lattice(3, batch=2, frames=5, labels=3, vocab=4)
    acts = acts.double().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a: rnnt_loss_vectorized(a, targets, act_lens, label_lens, blank=vocab), (acts,), eps=1e-6, atol=1e-5
    )


def test_single_path_lattice_is_exact():
    """One frame, no labels: the only path emits blank once, so the loss is -log P(blank)."""
    acts = torch.randn(1, 1, 1, 4)
    loss = rnnt_loss_vectorized(acts, torch.zeros(1, 0, dtype=torch.long), torch.tensor([1]), torch.tensor([0]), blank=3)
    assert loss.item() == pytest.approx(-torch.log_softmax(acts[0, 0, 0], -1)[3].item(), abs=1e-6)


def test_registered_name_and_bad_options():
    from nemo.collections.asr.losses.rnnt import RNNTLoss

    register_rnnt_loss()
    register_rnnt_loss()  # idempotent
    acts, targets, act_lens, label_lens, vocab = _lattice(0)
    mean = RNNTLoss(num_classes=vocab, loss_name=LOSS_NAME)(log_probs=acts, targets=targets, input_lengths=act_lens,
                                                            target_lengths=label_lens)  # fmt: skip
    assert mean.item() == pytest.approx(rnnt_loss_vectorized(acts, targets, act_lens, label_lens, vocab).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match=f"loss.{LOSS_NAME}_kwargs"):
        RNNTLoss(num_classes=vocab, loss_name=LOSS_NAME, loss_kwargs={"fastemit_lambda": 0.1})
    with pytest.raises(ValueError, match="not in list of available RNNT losses"):  # NeMo's names still NeMo's
        RNNTLoss(num_classes=vocab, loss_name="no_such_loss")
