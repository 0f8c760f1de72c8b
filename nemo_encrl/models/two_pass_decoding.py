"""Two-pass decoding: the RNN-T N-best, its attention scores, and their combination s1 + weight * s2 + bonus * |h|.

Kept apart from the model so the tuning command can score a dev set once and try every (weight, bonus)
on the stored scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ScoredNBest:
    """One utterance's first-pass N-best (best first) with both passes' log-likelihoods."""

    tokens: list[list[int]]
    texts: list[str]
    first_pass: list[float]  # s1: RNN-T log-prob of the hypothesis' best alignment (beam score, not normalised)
    second_pass: list[float] = field(default_factory=list)  # s2: attention log P(h + eos | x)

    def combined(self, weight: float, length_bonus: float) -> list[float]:
        return [s1 + weight * s2 + length_bonus * len(t) for s1, s2, t in zip(self.first_pass, self.second_pass, self.tokens)]

    def best(self, weight: float, length_bonus: float) -> int:
        """Index of the rescored 1-best; 0 (the first pass' own best) when there is nothing to rescore."""
        if not self.tokens:
            return -1
        scores = self.combined(weight, length_bonus) if self.second_pass else self.first_pass
        return max(range(len(scores)), key=scores.__getitem__)


def nbest_from_decoding(decoding, encoded: torch.Tensor, encoded_len: torch.Tensor, size: int) -> list[ScoredNBest]:
    """Up to `size` distinct hypotheses per utterance from a NeMo RNN-T beam decoding returning N-best lists.

    NeMo's default beam search neither merges equal label sequences nor caps the list at beam_size: keep the
    best-scored alignment of every distinct sequence, best first.
    """
    with torch.inference_mode():
        nbests = decoding.rnnt_decoder_predictions_tensor(encoder_output=encoded, encoded_lengths=encoded_len)
    out = []
    for hyps in nbests:
        if not isinstance(hyps, (list, tuple)):  # a single-best decoding: an N-best of one
            hyps = [hyps]
        seen: dict[tuple[int, ...], tuple[float, str]] = {}
        for h in hyps:
            seq = h.y_sequence.tolist() if hasattr(h.y_sequence, "tolist") else list(h.y_sequence)
            key = tuple(int(x) for x in seq)
            if key not in seen or h.score > seen[key][0]:
                seen[key] = (float(h.score), h.text)
        ranked = sorted(seen.items(), key=lambda kv: -kv[1][0])[:size]
        out.append(ScoredNBest(tokens=[list(k) for k, _ in ranked], texts=[v[1] for _, v in ranked],
                               first_pass=[v[0] for _, v in ranked]))  # fmt: skip
    return out


def add_second_pass(nbests: list[ScoredNBest], rescorer, encoded: torch.Tensor, encoded_len: torch.Tensor) -> None:
    """Fill every N-best's s2 with the attention decoder's teacher-forced log-likelihoods."""
    scores = rescorer.score(encoded, encoded_len, [n.tokens for n in nbests])
    for nbest, s2 in zip(nbests, scores):
        nbest.second_pass = s2
