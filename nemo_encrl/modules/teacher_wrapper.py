"""The frozen teacher inside the stage-1 model: only its encoder and CTC head, as plain modules.

Keeping the teacher as two NeMo neural modules (not a nested ModelPT) means no nested artifacts and no
model-guid juggling on save: its weights are `teacher.*` keys of the stage-1 state dict, its config
is `model.teacher.model`, and the tokenizer it was trained with is the stage-1 model's own tokenizer.
"""

from __future__ import annotations

import contextlib

import torch
from omegaconf import DictConfig

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}  # fmt: skip


class TeacherWrapper(torch.nn.Module):
    """Frozen encoder + CTC decoder of a NeMo CTC model; always in eval mode, never trained."""

    def __init__(self, cfg: DictConfig, dtype: str = "float32"):
        super().__init__()
        from nemo.collections.asr.models import EncDecCTCModel

        if dtype not in DTYPES:
            raise ValueError(f"teacher.dtype={dtype!r}: choose one of {sorted(DTYPES)}")
        self.dtype = DTYPES[dtype]
        self.encoder = EncDecCTCModel.from_config_dict(cfg.encoder)
        self.decoder = EncDecCTCModel.from_config_dict(cfg.decoder)
        self.requires_grad_(False)
        super().train(False)
        self._hidden: dict[int, torch.Tensor] = {}

    def train(self, mode: bool = True):  # Lightning calls .train() on the whole model every epoch
        return super().train(False)

    @property
    def subsampling_factor(self) -> int:
        return int(self.encoder.subsampling_factor)

    @property
    def d_model(self) -> int:
        return int(self.encoder._feat_out)

    def load_from(self, model) -> None:
        """Copy encoder and decoder weights from a loaded NeMo CTC model."""
        self.encoder.load_state_dict(model.encoder.state_dict())
        self.decoder.load_state_dict(model.decoder.state_dict())

    def _autocast(self, device: torch.device):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)

    @torch.no_grad()
    def forward(self, features: torch.Tensor, lengths: torch.Tensor, hidden_layers: tuple[int, ...] = ()):
        """mel [B, F, T] -> (encoded [B, T', D], lengths [B], log_probs [B, T', V], {layer: [B, T', D]})."""
        hooks = [
            self.encoder.layers[i].register_forward_hook(lambda m, a, out, i=i: self._hidden.__setitem__(i, out))
            for i in hidden_layers
        ]
        try:
            with self._autocast(features.device):
                encoded, enc_len = self.encoder(audio_signal=features, length=lengths)
                log_probs = self.decoder(encoder_output=encoded)
        finally:
            for h in hooks:
                h.remove()
        hidden, self._hidden = {i: h.float() for i, h in self._hidden.items()}, {}
        return encoded.float().transpose(1, 2), enc_len, log_probs.float(), hidden


def inference_features(preprocessor, signal: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's input as at inference: the preprocessor in eval mode (no dither), as the teacher
    cache stores it. Call it before the student's training-mode pass: NeMo dithers the waveform in place."""
    was_training = preprocessor.training
    preprocessor.eval()
    try:
        with torch.no_grad():
            return preprocessor(input_signal=signal, length=length)
    finally:
        preprocessor.train(was_training)
