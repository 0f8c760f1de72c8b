"""Distillation losses of EncRL stage 1: small functions over [B, T, D] tensors with frame lengths."""

from nemo_encrl.losses.clip import clip_loss, frame_clip_loss, gather_with_local_grad, utterance_clip_loss
from nemo_encrl.losses.kl import ctc_kl_loss
from nemo_encrl.losses.layer_pairs import hidden_layer_pairs, proportional_layer_pairs
from nemo_encrl.losses.masking import frame_mask, masked_mean_pool
from nemo_encrl.losses.mse import masked_mse

__all__ = [
    "clip_loss", "ctc_kl_loss", "frame_clip_loss", "frame_mask", "gather_with_local_grad", "hidden_layer_pairs",
    "masked_mean_pool", "masked_mse", "proportional_layer_pairs", "utterance_clip_loss",
]  # fmt: skip
