"""The second pass of a two-pass model: an attention decoder over the shared encoder that scores whole hypotheses.

Built from NeMo's parts as its AED models are (`TransformerDecoderNM`, a weight-tied `TokenClassifier` head,
`SmoothedCrossEntropyLoss`), with a Linear adapter when the encoder is wider or narrower than the decoder.
The project's BPE tokenizers have no bos/eos, so by default the decoder gets two ids of its own just past
the RNN-T vocabulary (`special_tokens: reserved`); the RNN-T vocabulary is untouched.
"""

from __future__ import annotations

import math

import torch
from omegaconf import DictConfig
from torch import nn

from nemo_encrl.losses.masking import frame_mask


class TwoPassConfigError(ValueError):
    pass


def special_token_ids(cfg: DictConfig, tokenizer) -> tuple[int, int, int]:
    """(bos, eos, number of classes) for the attention decoder, from `aux_attn.special_tokens`."""
    mode = cfg.get("special_tokens", "reserved")
    vocab = int(tokenizer.vocab_size)
    if mode == "reserved":
        bos, eos = vocab, vocab + 1
    elif mode == "tokenizer":
        bos, eos = int(getattr(tokenizer, "bos_id", -1)), int(getattr(tokenizer, "eos_id", -1))
        if bos < 0 or eos < 0:
            raise TwoPassConfigError(
                f"model.aux_attn.special_tokens=tokenizer, but the tokenizer has no bos/eos (bos_id={bos}, "
                f"eos_id={eos}): train it with bos/eos or use special_tokens=reserved"
            )
    else:
        raise TwoPassConfigError(f"model.aux_attn.special_tokens={mode!r}: use 'reserved' or 'tokenizer'")
    return bos, eos, 8 * math.ceil((max(vocab, bos, eos) + 1) / 8)  # a multiple of 8, as NeMo's AED models


def pad_token_lists(sequences: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists -> zero-padded ids [N, max(1, longest)] and their lengths [N] (empty lists allowed)."""
    lengths = torch.tensor([len(h) for h in sequences], device=device)
    tokens = torch.zeros((len(sequences), max([1, *map(len, sequences)])), dtype=torch.long, device=device)
    for i, h in enumerate(sequences):
        tokens[i, : len(h)] = torch.tensor(h, dtype=torch.long)
    return tokens, lengths


class AttentionRescorer(nn.Module):
    """Teacher-forced attention decoder: log-probs for training and a log-likelihood per hypothesis."""

    def __init__(self, feat_in: int, bos_id: int, eos_id: int, num_classes: int, decoder: DictConfig,
                 adapter: str = "auto", label_smoothing: float = 0.0):  # fmt: skip
        super().__init__()
        from nemo.collections.asr.modules.transformer.transformer import TransformerDecoderNM
        from nemo.collections.asr.parts.submodules.token_classifier import TokenClassifier
        from nemo.collections.common.losses import SmoothedCrossEntropyLoss
        from nemo.collections.common.parts import transformer_weights_init

        hidden = int(decoder.hidden_size)
        if adapter == "none" and feat_in != hidden:
            raise TwoPassConfigError(
                f"model.aux_attn.adapter=none, but the encoder gives {feat_in} features and "
                f"model.aux_attn.decoder.hidden_size={hidden}: use adapter=linear (or auto)"
            )
        if adapter not in ("auto", "linear", "none"):
            raise TwoPassConfigError(f"model.aux_attn.adapter={adapter!r}: use auto, linear or none")
        self.bos_id, self.eos_id, self.num_classes = bos_id, eos_id, num_classes
        self.max_length = int(decoder.get("max_sequence_length", 512))
        use_linear = adapter == "linear" or (adapter == "auto" and feat_in != hidden)
        self.adapter = nn.Linear(feat_in, hidden) if use_linear else nn.Identity()
        self.decoder = TransformerDecoderNM(vocab_size=num_classes, **decoder)
        self.head = TokenClassifier(hidden_size=hidden, num_classes=num_classes, log_softmax=True)
        self.head.mlp.layer0.weight = self.decoder.embedding.token_embedding.weight  # tied, as in NeMo's AED
        std = 1.0 / math.sqrt(hidden)
        self.decoder.apply(lambda m: transformer_weights_init(m, std_init_range=std, xavier=False))
        self.head.apply(lambda m: transformer_weights_init(m, std_init_range=std, xavier=False))
        self.ce = SmoothedCrossEntropyLoss(label_smoothing=label_smoothing)

    def reads(self, hypothesis) -> bool:
        """The decoder has positions for `hypothesis` with its bos (an undertrained first pass can emit more)."""
        return len(hypothesis) + 1 <= self.max_length

    def teacher_forcing(self, tokens: torch.Tensor, lengths: torch.Tensor):
        """[bos] + y as input, y + [eos] as labels, and the mask of real positions; tokens [B, U] zero-padded."""
        batch, width = tokens.shape[0], int(lengths.max()) if lengths.numel() else 0
        if width + 1 > self.max_length:
            raise ValueError(
                f"a transcript of {width} tokens is longer than model.aux_attn.decoder.max_sequence_length="
                f"{self.max_length} - 1"
            )
        tokens = tokens[:, :width].long()
        bos = torch.full((batch, 1), self.bos_id, dtype=torch.long, device=tokens.device)
        inputs = torch.cat([bos, tokens], dim=1)
        labels = torch.cat([tokens, torch.zeros_like(bos)], dim=1)
        labels[torch.arange(batch, device=tokens.device), lengths.long()] = self.eos_id
        return inputs, labels, frame_mask(lengths.long() + 1, width + 1)

    def forward(self, encoded: torch.Tensor, encoded_len: torch.Tensor, tokens: torch.Tensor,
                token_len: torch.Tensor):  # fmt: skip
        """log-probs [B, U+1, C] of y + [eos] given encoder output [B, D, T], with labels and mask."""
        inputs, labels, mask = self.teacher_forcing(tokens, token_len)
        states = self.adapter(encoded.transpose(1, 2))
        hidden = self.decoder(
            input_ids=inputs, decoder_mask=mask.to(states.dtype), encoder_embeddings=states,
            encoder_mask=frame_mask(encoded_len, states.shape[1]).to(states.dtype),
        )  # fmt: skip
        return self.head(hidden_states=hidden), labels, mask

    def loss(self, encoded, encoded_len, tokens, token_len) -> torch.Tensor:
        """Label-smoothed cross-entropy per token (NeMo's reduction: mean over real tokens, eos included)."""
        log_probs, labels, mask = self(encoded, encoded_len, tokens, token_len)
        return self.ce(log_probs=log_probs, labels=labels, output_mask=mask.to(log_probs.dtype))

    @torch.no_grad()
    def score(self, encoded: torch.Tensor, encoded_len: torch.Tensor, hypotheses: list[list[list[int]]]) -> list:
        """log P(h + eos | x) for every hypothesis of every utterance: one list of floats per utterance.

        encoded [B, D, T]; hypotheses[b] is utterance b's N-best as token-id lists (an empty one is allowed).
        A hypothesis longer than the decoder's positions (a first pass emitting garbage) scores -inf.
        """
        flat = [list(map(int, h)) for hyps in hypotheses for h in hyps]
        owner = [b for b, hyps in enumerate(hypotheses) for _ in hyps]
        scores = [float("-inf")] * len(flat)
        fits = [i for i, h in enumerate(flat) if self.reads(h)]
        if fits:
            tokens, lengths = pad_token_lists([flat[i] for i in fits], encoded.device)
            idx = torch.tensor([owner[i] for i in fits], device=encoded.device)
            log_probs, labels, mask = self(encoded[idx], encoded_len[idx], tokens, lengths)
            picked = (log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1) * mask).sum(-1).tolist()
            for i, score in zip(fits, picked):
                scores[i] = score
        out, start = [], 0
        for hyps in hypotheses:
            out.append(scores[start : start + len(hyps)])
            start += len(hyps)
        return out
