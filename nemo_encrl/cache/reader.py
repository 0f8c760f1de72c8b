"""Reading a teacher cache: its record, its index (cut id -> lhotse arrays) and batches of its arrays.

The index is built lazily from `cuts.jsonl.gz` in each process that reads (DataLoader workers
included); HDF5 files are opened by lhotse's readers only when an array is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from nemo_encrl.cache.compress import topk_expand
from nemo_encrl.cache.layout import (FIELD_ENCODER, FIELD_LOGPROBS, FIELD_TOPK_INDICES, FIELD_TOPK_VALUES,
                                     CacheLayout, TeacherCacheError, hidden_field)  # fmt: skip

META = "cache.json"

# NeMo lhotse options that change a cut's audio (or its length) at every epoch in a way the cache
# cannot know: with them the teacher's stored outputs would belong to other audio
UNCACHEABLE_INPUT_OPTIONS = {
    "perturb_speed": "speed perturbation",
    "noise_path": "noise mixing",
    "rir_enabled": "reverberation (RIR)",
    "truncate_duration": "truncation",
    "cut_into_windows_duration": "cutting into windows",
    "concatenate_samples": "concatenation of utterances",
    "pad_min_duration": "padding to a minimum duration",
}


def check_cacheable_inputs(train_ds: DictConfig, reader: str = "the teacher", switch: str = "model.teacher.cache=null",
                           error=TeacherCacheError) -> None:  # fmt: skip
    """Refuse data options that make what `reader` computes from the training audio differ from epoch to epoch
    (the teacher cache; the two-pass rescorer stage's N-best store)."""
    for key, what in UNCACHEABLE_INPUT_OPTIONS.items():
        if train_ds.get(key):
            raise error(
                f"model.train_ds.{key}={train_ds.get(key)!r} ({what}) changes the audio {reader} would see at "
                f"every epoch, so its outputs cannot be cached: set {switch} or turn it off"
            )


def train_cuts(train_ds: DictConfig):
    """The cuts NeMo's lhotse loader reads for `train_ds` (same ids), resampled to its sample rate."""
    from nemo.collections.common.data.lhotse.cutset import read_cutset_from_config
    from nemo.collections.common.data.lhotse.dataloader import make_structured_with_schema_warnings

    config = make_structured_with_schema_warnings(OmegaConf.to_container(train_ds, resolve=True))
    cuts, _ = read_cutset_from_config(config)
    return cuts.resample(int(config.sample_rate))


def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / META
    if not path.is_file():
        raise TeacherCacheError(
            f"model.teacher.cache={folder}: no teacher cache there ({META} missing); build it with "
            "`nemo-encrl cache-teacher` and the same stage-1 config"
        )
    return json.loads(path.read_text())


class TeacherCache:
    """A complete teacher cache folder: its record, and the cached arrays of any of its cuts."""

    def __init__(self, folder: str | Path, need: CacheLayout | None = None):
        """`need`: what the reading run's losses use; only those fields are loaded (default: all)."""
        self.folder = Path(folder)
        self.meta = read_meta(self.folder)
        if not self.meta.get("complete"):
            raise TeacherCacheError(
                f"teacher cache {self.folder} is incomplete (a build was stopped): run `nemo-encrl cache-teacher` "
                "again with the same config to finish it"
            )
        self.layout = CacheLayout.from_dict(self.meta["layout"])
        self.vocab_size = int(self.meta["vocab_size"])
        self.fields = self.layout.fields_for(need) if need is not None else self.layout.fields()
        self._index: dict[str, dict] | None = None

    def __getstate__(self):  # DataLoader workers rebuild the index themselves
        return {**self.__dict__, "_index": None}

    @property
    def index(self) -> dict[str, dict]:
        if self._index is None:
            from lhotse import CutSet

            fields = self.layout.fields()  # every field's manifest (cheap); only self.fields are loaded
            self._index = {
                cut.id: {name: cut.custom[name].with_path_prefix(self.folder) for name in fields}
                for cut in CutSet.from_file(self.folder / "cuts.jsonl.gz")
            }
        return self._index

    def missing(self, cut_ids) -> list[str]:
        return [cid for cid in cut_ids if cid not in self.index]

    def arrays_for(self, cut) -> dict:
        try:
            return self.index[cut.id]
        except KeyError:
            raise TeacherCacheError(
                f"cut {cut.id!r} has no cached teacher outputs in {self.folder}: rebuild the cache for this data"
            ) from None

    def collate(self, cuts) -> dict:
        """Padded batch tensors of every stored field for `cuts` ([B, T, ...]), with frame counts and ids.
        (The dataset's cuts may be padded MixedCuts: arrays are found by cut id.)"""
        from lhotse.dataset.collation import collate_matrices

        arrays = [self.arrays_for(c) for c in cuts]
        batch = {name: collate_matrices([torch.from_numpy(a[name].load()) for a in arrays], padding_value=0)
                 for name in self.fields}  # fmt: skip
        any_field = self.layout.fields()[0]  # every field has the utterance's frame count
        lengths = torch.tensor([a[any_field].num_frames for a in arrays], dtype=torch.long)
        return {"fields": batch, "lengths": lengths, "cut_ids": [c.id for c in cuts]}


def teacher_outputs(batch: dict, vocab_size: int, hidden_layers) -> tuple:
    """A collated cache batch -> (encoded [B,T,D], lengths [B], log_probs [B,T,V], {layer: [B,T,D]}) in
    float32, the same shapes `TeacherWrapper.forward` returns; fields not loaded are None. A hidden
    layer without a field of its own is the teacher's last layer, i.e. the encoder output."""
    f = batch["fields"]
    enc = f[FIELD_ENCODER].float() if FIELD_ENCODER in f else None
    if FIELD_LOGPROBS in f:
        logp = f[FIELD_LOGPROBS].float()
    elif FIELD_TOPK_VALUES in f:
        logp = topk_expand(f[FIELD_TOPK_VALUES], f[FIELD_TOPK_INDICES], vocab_size)
    else:
        logp = None
    hidden = {j: f[hidden_field(j)].float() if hidden_field(j) in f else enc for j in hidden_layers}
    return enc, batch["lengths"], logp, hidden

