"""Weights of a full-context Conformer mapped onto a cache-aware streaming one, so that it starts near the model
it came from.

A streaming encoder differs in three settings (NeMo's cache-aware streaming): limited attention context
(`att_context_size`, `chunked_limited`), causal depthwise convolutions (`conv_context_size: causal`) and causal
subsampling (`causal_downsampling: true`). Loaded as they are (NeMo's `init_from_nemo_model`, with
`pre_encode.out` left out because its shape changes), a causal convolution applies the symmetric kernel 15
frames late and the subsampling's output layer starts from random weights: the model is lost. Measured on the
CTC demo teacher, bench dev, no training (docs/TWO_PASS.md, `benchmarks/streaming_init_ablation.py`): 15.3% WER
full-context, 23.8% with the attention limit alone, 97% with causal convolutions loaded as they are.

This mapping instead keeps, in each causal kernel, the symmetric kernel's past and centre taps at their time
offsets (the future taps are dropped: the nearest causal kernel in that sense), and moves the subsampling's
output weights one frequency bin up (causal padding adds a bin at the low end).
"""

from __future__ import annotations

import torch


def causal_kernel(symmetric: torch.Tensor) -> torch.Tensor:
    """A depthwise kernel [C, 1, K] (K odd, centred) as a causal one of the same size: output at t from the
    same taps t-K//2 .. t with the same weights, the future taps dropped."""
    k = symmetric.shape[-1]
    if k % 2 != 1:
        raise ValueError(f"a symmetric depthwise kernel has an odd size, got {k}")
    causal = torch.zeros_like(symmetric)
    causal[..., k // 2 :] = symmetric[..., : k // 2 + 1]
    return causal


def subsampling_output_weight(old: torch.Tensor, new_shape: torch.Size, channels: int, shift: int = 1) -> torch.Tensor:
    """pre_encode.out.weight [d, channels x F_old] -> [d, channels x F_new] (F_new >= F_old), frequency bin f
    of the old layout at bin f + shift of the new one; bins without an old weight start at zero."""
    d, f_old, f_new = old.shape[0], old.shape[1] // channels, new_shape[1] // channels
    if old.shape[1] != channels * f_old or new_shape[1] != channels * f_new or new_shape[0] != d:
        raise ValueError(f"pre_encode.out: cannot map {tuple(old.shape)} onto {tuple(new_shape)} with {channels} channels")
    mapped = torch.zeros(d, channels, f_new, dtype=old.dtype)
    n = min(f_old, f_new - shift)
    mapped[:, :, shift : shift + n] = old.view(d, channels, f_old)[:, :, :n]
    return mapped.view(new_shape)


def streaming_encoder_state(full: dict[str, torch.Tensor], streaming: dict[str, torch.Tensor], channels: int,
                            causal_convs: bool, shift: int = 1) -> dict[str, torch.Tensor]:  # fmt: skip
    """The state dict of the streaming encoder (keys and shapes of `streaming`) from a full-context encoder's
    (`full`): equal shapes copied, causal depthwise kernels from the symmetric ones, the subsampling's output
    layer remapped. Keys the full-context encoder lacks keep `streaming`'s values."""
    out = {}
    for key, target in streaming.items():
        source = full.get(key)
        if source is None:
            out[key] = target
        elif key.endswith("pre_encode.out.weight") and source.shape != target.shape:
            out[key] = subsampling_output_weight(source, target.shape, channels, shift)
        elif source.shape != target.shape:
            raise ValueError(f"encoder weight '{key}': {tuple(source.shape)} cannot start {tuple(target.shape)}")
        elif causal_convs and key.endswith("conv.depthwise_conv.weight"):
            out[key] = causal_kernel(source)
        else:
            out[key] = source.clone()
    return out


class StreamingInitError(ValueError):
    """A model that cannot start a streaming encoder, named with the config key that points at it."""


def subsampling_channels(encoder) -> int:
    """Output channels of the encoder's (striding) subsampling convolutions: the layout of pre_encode.out."""
    convs = [m for m in encoder.pre_encode.modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise StreamingInitError("init_streaming_from: the encoder's subsampling has no Conv2d (striding subsampling expected)")
    return convs[-1].out_channels


def init_streaming_from(model, path: str) -> list[str]:
    """`init_streaming_from: <.nemo>` in a training config: the preprocessor and encoder of `model` (a streaming
    Conformer) start from the full-context model at `path`, its weights mapped by `streaming_encoder_state`;
    modules equal in both (a CTC decoder) are copied. Returns the names of the modules it set.
    Like NeMo's init_from_nemo_model it runs once at model build; a resumed run then loads its checkpoint."""
    from nemo_encrl.teacher import load_asr_model

    source = load_asr_model(path=path, what="init_streaming_from model")
    src, dst = source.cfg.encoder, model.cfg.encoder
    for key in ("n_layers", "d_model", "subsampling_factor"):
        if src.get(key) != dst.get(key):
            raise StreamingInitError(f"init_streaming_from={path}: its encoder has {key}={src.get(key)}, "
                                     f"model.encoder.{key}={dst.get(key)}")  # fmt: skip
    if src.get("causal_downsampling", False) and not dst.get("causal_downsampling", False):
        raise StreamingInitError(f"init_streaming_from={path}: its subsampling is causal, model.encoder.causal_downsampling is not")
    to_causal = dst.get("conv_context_size") == "causal" and src.get("conv_context_size") != "causal"
    try:
        state = streaming_encoder_state(source.encoder.state_dict(), model.encoder.state_dict(),
                                        subsampling_channels(model.encoder), causal_convs=to_causal)  # fmt: skip
    except ValueError as e:
        raise StreamingInitError(f"init_streaming_from={path}: {e}") from e
    model.encoder.load_state_dict(state)
    model.preprocessor.load_state_dict(source.preprocessor.state_dict())
    return ["preprocessor", "encoder", *_copy_matching_modules(model, source)]


def _copy_matching_modules(model, source) -> list[str]:
    """Other top-level modules with weights that `source` has in the same class and shapes (a CTC decoder of the
    same vocabulary) are copied too: a streaming CTC model then starts with its CTC head."""
    copied = []
    for name, module in model.named_children():
        other = getattr(source, name, None)
        if name in ("preprocessor", "encoder") or type(other) is not type(module) or not list(module.parameters()):
            continue
        mine, theirs = module.state_dict(), other.state_dict()
        if mine.keys() == theirs.keys() and all(mine[k].shape == theirs[k].shape for k in mine):
            module.load_state_dict(theirs)
            copied.append(name)
    return copied
