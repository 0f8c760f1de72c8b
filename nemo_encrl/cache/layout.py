"""What a teacher cache holds and what a stage-1 run needs from it, as small comparable records.

A cache is only valid for the teacher weights, the features and the loss layout it was built with;
`CacheLayout` and `cache_identity` capture exactly those, so a stale cache is named before training.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import torch
from omegaconf import DictConfig

from nemo_encrl.losses.layer_pairs import hidden_layer_pairs

# preprocessor fields that change the features (the teacher's input); a cache is valid only for these
FEATURE_KEYS = ("sample_rate", "features", "window_size", "window_stride", "window", "n_fft", "normalize", "log",
                "frame_splicing", "dither", "pad_to", "pad_value", "lowfreq", "highfreq", "mag_power", "log_zero_guard_type",
                "log_zero_guard_value", "preemph")  # fmt: skip
FIELD_ENCODER = "teacher_encoder"
FIELD_LOGPROBS = "teacher_logprobs"
FIELD_TOPK_VALUES = "teacher_logprobs_topk_values"
FIELD_TOPK_INDICES = "teacher_logprobs_topk_indices"
STORAGE_DTYPES = ("float16", "float32")
LOGPROB_FORMATS = ("full", "topk")


class TeacherCacheError(ValueError):
    pass


def hidden_field(layer: int) -> str:
    return f"teacher_hidden_{layer}"


@dataclass(frozen=True)
class CacheLayout:
    """Which teacher outputs are stored, and how."""

    encoder: bool
    logprobs: str | None  # None | "full" | "topk"
    hidden_layers: tuple[int, ...] = field(default_factory=tuple)
    dtype: str = "float16"
    topk: int = 0
    # the teacher layer whose output *is* the encoder output (a Conformer without an output projection):
    # when both are wanted it is stored once, as the encoder output
    encoder_layer: int | None = None

    def stored_hidden(self) -> list[int]:
        return [j for j in self.hidden_layers if not (self.encoder and j == self.encoder_layer)]

    def fields(self) -> list[str]:
        names = [FIELD_ENCODER] if self.encoder else []
        if self.logprobs == "full":
            names.append(FIELD_LOGPROBS)
        elif self.logprobs == "topk":
            names += [FIELD_TOPK_VALUES, FIELD_TOPK_INDICES]
        return names + [hidden_field(j) for j in self.stored_hidden()]

    def fields_for(self, need: "CacheLayout") -> list[str]:
        """The stored fields a run with needs `need` reads (an all-layers cache serves a small student too)."""
        names = self.fields()
        wanted = set()
        if need.encoder or (self.encoder and self.encoder_layer in need.hidden_layers):
            wanted.add(FIELD_ENCODER)
        if need.logprobs:
            wanted |= {FIELD_LOGPROBS, FIELD_TOPK_VALUES, FIELD_TOPK_INDICES}
        wanted |= {hidden_field(j) for j in need.hidden_layers}
        return [n for n in names if n in wanted]

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden_layers": list(self.hidden_layers)}

    @classmethod
    def from_dict(cls, d: dict) -> "CacheLayout":
        return cls(**{**d, "hidden_layers": tuple(d.get("hidden_layers", ()))})

    def missing_for(self, need: "CacheLayout") -> list[str]:
        """What `need` asks for that this cache does not hold, in words."""
        missing = []
        if need.encoder and not self.encoder:
            missing.append("the teacher's encoder output (model.loss.clip / mse_encoder)")
        if need.logprobs and not self.logprobs:
            missing.append("the teacher's CTC log-probabilities (model.loss.mse_logprobs / kl)")
        absent = sorted(set(need.hidden_layers) - set(self.hidden_layers))
        if absent:
            missing.append(f"teacher layers {absent} (model.loss.hidden.pairs)")
        return missing


def needed_layout(model_cfg: DictConfig, n_teacher_layers: int, cache_cfg: DictConfig | None = None,
                  last_layer_is_output: bool = False) -> CacheLayout:  # fmt: skip
    """The outputs the configured stage-1 losses read from the teacher (weights > 0), stored per `cache_cfg`.
    `last_layer_is_output`: the teacher encoder has no output projection after its last layer."""
    loss = model_cfg.loss
    on = {name: float((loss.get(name) or {}).get("weight", 0)) > 0 for name in loss}
    pairs = hidden_layer_pairs(loss, int(model_cfg.encoder.n_layers), n_teacher_layers)
    cache_cfg = cache_cfg or DictConfig({})
    layers = cache_cfg.get("hidden_layers", "pairs")
    if layers == "pairs":
        hidden = sorted({j for _, j in pairs})
    elif layers == "all":
        hidden = list(range(n_teacher_layers))
    elif isinstance(layers, str):
        raise TeacherCacheError(f"teacher_cache.hidden_layers={layers!r}: use pairs, all or a list of teacher layers")
    else:
        hidden = sorted({int(j) for j in layers} | {j for _, j in pairs})
        bad = [j for j in hidden if not 0 <= j < n_teacher_layers]
        if bad:
            raise TeacherCacheError(f"teacher_cache.hidden_layers has {bad}: the teacher's layers are 0..{n_teacher_layers - 1}")
    fmt = cache_cfg.get("logprobs", "full")
    if fmt not in LOGPROB_FORMATS:
        raise TeacherCacheError(f"teacher_cache.logprobs={fmt!r}: choose one of {list(LOGPROB_FORMATS)}")
    dtype = cache_cfg.get("dtype", "float16")
    if dtype not in STORAGE_DTYPES:
        raise TeacherCacheError(f"teacher_cache.dtype={dtype!r}: choose one of {list(STORAGE_DTYPES)}")
    wants_logprobs = on.get("mse_logprobs", False) or on.get("kl", False)
    return CacheLayout(
        encoder=on.get("clip", False) or on.get("mse_encoder", False),
        logprobs=fmt if wants_logprobs else None,
        hidden_layers=tuple(hidden),
        dtype=dtype,
        topk=int(cache_cfg.get("logprobs_topk", 16)) if wants_logprobs and fmt == "topk" else 0,
        encoder_layer=n_teacher_layers - 1 if last_layer_is_output else None,
    )


def teacher_digest(encoder: torch.nn.Module, decoder: torch.nn.Module) -> str:
    """SHA-256 of the teacher's encoder and CTC head weights (names, shapes, values): the same
    teacher gives the same digest whether it came from a .nemo, a pretrained name or a stage-1 model."""
    h = hashlib.sha256()
    for prefix, module in (("encoder.", encoder), ("decoder.", decoder)):
        for name, tensor in sorted(module.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            h.update(f"{prefix}{name}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def feature_settings(preprocessor_cfg: DictConfig) -> dict:
    """The preprocessor settings that decide the teacher's input features."""
    return {k: preprocessor_cfg.get(k) for k in FEATURE_KEYS if preprocessor_cfg.get(k) is not None}


def cache_identity(teacher_encoder, teacher_decoder, preprocessor_cfg: DictConfig) -> dict:
    """The teacher and features a cache's contents depend on (its layout is recorded beside them): stage 1
    refuses a cache whose identity differs from its own."""
    frame_shift = float(preprocessor_cfg.window_stride) * int(teacher_encoder.subsampling_factor)
    return {"teacher": teacher_digest(teacher_encoder, teacher_decoder), "features": feature_settings(preprocessor_cfg),
            "frame_shift": frame_shift}  # fmt: skip


def describe_differences(built: dict, now: dict) -> list[str]:
    """'key: cache has X, this run has Y' for every key that differs (nested dicts flattened with dots)."""
    out = []
    for key in sorted(set(built) | set(now)):
        a, b = built.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{d}" for d in describe_differences(a, b)]
        elif a != b:
            out.append(f"{key}: cache {a!r}, this run {b!r}")
    return out
