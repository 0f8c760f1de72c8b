"""`nemo-encrl cache-teacher`: run the frozen teacher once over the stage-1 training data and store what
the configured stage-1 losses read from it, as lhotse arrays beside lhotse cuts.

Layout of a cache folder (`model.teacher.cache`):
  cache.json              what it was built with (teacher digest, features, stored layout) and, once
                          complete, per-field sizes
  arrays-NNNNN.h5         lhotse NumpyHdf5Writer files, one per shard of `shard_size` utterances
  cuts-NNNNN.jsonl.gz     the shard's cuts with TemporalArray custom fields (written last: a shard
                          without one is incomplete and is redone on resume)
  cuts.jsonl.gz           all shards' cuts, written when the cache is complete
A killed build started again with the same command loses at most the shard it was writing.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from nemo_encrl.cache.compress import topk_compress
from nemo_encrl.cache.layout import (FIELD_ENCODER, FIELD_LOGPROBS, FIELD_TOPK_INDICES, FIELD_TOPK_VALUES,
                                     CacheLayout, TeacherCacheError, cache_identity, describe_differences,
                                     hidden_field, needed_layout)  # fmt: skip
from nemo_encrl.cache.reader import META, check_cacheable_inputs, read_meta, train_cuts

log = logging.getLogger("nemo_encrl")


class _LoadAudio(torch.utils.data.Dataset):
    """A CutSet batch -> (audio, lengths, cuts), audio read by lhotse (in DataLoader workers)."""

    def __init__(self):
        from lhotse.dataset import AudioSamples

        self.load = AudioSamples()

    def __getitem__(self, cuts):
        audio, lengths = self.load(cuts)
        return audio, lengths, cuts


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class _ShardWriter:
    """Arrays of up to `size` cuts into one HDF5 file; the cuts file is written when the shard closes."""

    def __init__(self, folder: Path, index: int):
        from lhotse import NumpyHdf5Writer

        self.folder, self.index = folder, index
        self.h5_name = f"arrays-{index:05d}.h5"
        self.writer = NumpyHdf5Writer(folder / self.h5_name, mode="w")
        self.cuts = []
        self.bytes: dict[str, int] = {}

    def add(self, cut, arrays: dict, frame_shift: float) -> None:
        from lhotse.utils import fastcopy

        custom = dict(cut.custom or {})
        n = len(self.cuts)
        for name, value in arrays.items():
            manifest = self.writer.store_array(f"{n:06d}_{name}", value, frame_shift=frame_shift, temporal_dim=0)
            manifest = fastcopy(manifest, array=fastcopy(manifest.array, storage_path=self.h5_name))  # relative
            custom[name] = manifest
            self.bytes[name] = self.bytes.get(name, 0) + value.nbytes
        self.cuts.append(fastcopy(cut, custom=custom))

    def close(self) -> None:
        from lhotse import CutSet

        self.writer.close()
        tmp = self.folder / f"cuts-{self.index:05d}.tmp.jsonl.gz"
        CutSet.from_cuts(c.drop_in_memory_data() for c in self.cuts).to_file(tmp)
        os.replace(tmp, self.folder / f"cuts-{self.index:05d}.jsonl.gz")
        (self.folder / f"bytes-{self.index:05d}.json").write_text(json.dumps(self.bytes))


def _finished_shards(folder: Path) -> list[Path]:
    """Shards whose cuts file exists; the arrays file of any other shard is a leftover of a killed run."""
    done = sorted(p for p in folder.glob("cuts-[0-9]*.jsonl.gz") if ".tmp." not in p.name)
    done_h5 = {p.name.replace("cuts-", "arrays-").replace(".jsonl.gz", ".h5") for p in done}
    for h5 in folder.glob("arrays-*.h5"):
        if h5.name not in done_h5:
            h5.unlink()
    for tmp in folder.glob("cuts-*.tmp.jsonl.gz"):
        tmp.unlink()
    return done


def _arrays_of(i: int, n: int, enc, logp, hidden, layout: CacheLayout) -> dict:
    import numpy as np

    dtype = np.float16 if layout.dtype == "float16" else np.float32
    out = {}
    if layout.encoder:
        out[FIELD_ENCODER] = enc[i, :n].cpu().numpy().astype(dtype)
    if layout.logprobs == "full":
        out[FIELD_LOGPROBS] = logp[i, :n].cpu().numpy().astype(dtype)
    elif layout.logprobs == "topk":
        values, indices = topk_compress(logp[i, :n], layout.topk)
        out[FIELD_TOPK_VALUES] = values.cpu().numpy().astype(dtype)
        index_dtype = np.int16 if logp.shape[-1] <= np.iinfo(np.int16).max else np.int32
        out[FIELD_TOPK_INDICES] = indices.cpu().numpy().astype(index_dtype)
    for j in layout.stored_hidden():
        out[hidden_field(j)] = hidden[j][i, :n].cpu().numpy().astype(dtype)
    return out


def _summary(folder: Path, shards: list[Path], seconds: float) -> dict:
    from lhotse import CutSet

    totals: dict[str, int] = {}
    for shard in shards:
        for name, b in json.loads((folder / shard.name.replace("cuts-", "bytes-").replace(".jsonl.gz", ".json")).read_text()).items():
            totals[name] = totals.get(name, 0) + b
    cuts = CutSet.from_file(folder / "cuts.jsonl.gz")
    n, audio = 0, 0.0
    for c in cuts:
        n, audio = n + 1, audio + c.duration
    disk = sum(p.stat().st_size for p in folder.glob("arrays-*.h5"))
    return {"utterances": n, "audio_hours": round(audio / 3600, 3), "build_seconds": round(seconds, 1),
            "bytes_per_audio_second": {k: round(v / audio, 1) for k, v in totals.items()},
            "bytes_per_audio_second_total": round(sum(totals.values()) / audio, 1),
            "array_bytes": sum(totals.values()), "disk_bytes": disk}  # fmt: skip


def _save_progress(folder: Path, meta: dict, seconds: float) -> None:
    """Build seconds so far, over all resumed runs, kept in cache.json after every shard."""
    meta["seconds_before_resume"] = round(seconds, 1)
    (folder / META).write_text(json.dumps(meta, indent=1))


def build_teacher_cache(cfg: DictConfig) -> Path:
    """Build (or finish) the cache at cfg.model.teacher.cache for cfg.model.train_ds; returns the folder."""
    from lhotse import CutSet
    from lhotse.dataset import DynamicCutSampler
    from tqdm import tqdm

    from nemo_encrl.joblog import terminal
    from nemo_encrl.modules import TeacherWrapper
    from nemo_encrl.teacher import load_ctc_model

    model_cfg, cache_cfg = cfg.model, cfg.get("teacher_cache") or OmegaConf.create({})
    if not model_cfg.teacher.get("cache"):
        raise TeacherCacheError("set model.teacher.cache=<folder> to say where the teacher cache goes")
    folder = Path(model_cfg.teacher.cache)
    check_cacheable_inputs(model_cfg.train_ds)
    teacher = load_ctc_model(path=model_cfg.teacher.get("path"), pretrained_name=model_cfg.teacher.get("pretrained_name"))
    layout = needed_layout(model_cfg, len(teacher.encoder.layers), cache_cfg,
                           last_layer_is_output=getattr(teacher.encoder, "out_proj", None) is None)  # fmt: skip
    identity = {**cache_identity(teacher.encoder, teacher.decoder, teacher.cfg.preprocessor), "layout": layout.to_dict()}
    frame_shift = identity["frame_shift"]

    folder.mkdir(parents=True, exist_ok=True)
    meta = read_meta(folder) if (folder / META).exists() else None
    if meta is not None:
        diff = describe_differences({k: meta.get(k) for k in identity}, identity)
        if diff:
            raise TeacherCacheError(f"teacher cache {folder} was started with other settings ({'; '.join(diff)}): "
                                    "delete it or set model.teacher.cache to a new folder")  # fmt: skip
        if meta.get("complete"):
            log.info("teacher cache %s is complete (%s utterances); nothing to do", folder, meta["summary"]["utterances"])
            return folder
    else:
        meta = {**identity, "complete": False, "vocab_size": int(teacher.decoder.num_classes_with_blank),
                "teacher_source": str(model_cfg.teacher.get("path") or model_cfg.teacher.get("pretrained_name")),
                "seconds_before_resume": 0.0}  # fmt: skip
        (folder / META).write_text(json.dumps(meta, indent=1))

    shards = _finished_shards(folder)
    done_ids = {c.id for s in shards for c in CutSet.from_file(s)}
    all_cuts = train_cuts(model_cfg.train_ds)
    if model_cfg.train_ds.get("tarred_audio_filepaths") or model_cfg.train_ds.get("shar_path"):
        total = sum(1 for _ in all_cuts)  # sequential input: count, then stream it in its own order
        todo = all_cuts.filter(lambda c: c.id not in done_ids)
    else:  # read the manifest once; similar lengths per batch: less padding
        all_cuts = list(all_cuts)
        total = len(all_cuts)
        todo = CutSet.from_cuts(c for c in all_cuts if c.id not in done_ids).sort_by_duration()
    log.info("teacher cache %s: %d of %d utterances done, layout %s", folder, len(done_ids), total, layout.fields())

    device = _device(str(cache_cfg.get("device", "auto")))
    wrapper = TeacherWrapper(OmegaConf.create({"encoder": OmegaConf.to_container(teacher.cfg.encoder),
                                               "decoder": OmegaConf.to_container(teacher.cfg.decoder)}),
                             dtype=str(model_cfg.teacher.get("dtype", "float32")))  # fmt: skip
    wrapper.load_from(teacher)
    wrapper.to(device)
    preprocessor = teacher.preprocessor.to(device).eval()
    del teacher
    with warnings.catch_warnings():  # the sorted CutSet is in memory on purpose
        warnings.filterwarnings("ignore", message=".*eagerly read CutSet")
        sampler = DynamicCutSampler(todo, max_duration=float(cache_cfg.get("batch_duration", 200)), shuffle=False)
    workers = int(cache_cfg.get("num_workers", 1))
    loader = torch.utils.data.DataLoader(_LoadAudio(), sampler=sampler, batch_size=None, num_workers=workers,
                                         persistent_workers=False)  # fmt: skip
    shard_size = int(cache_cfg.get("shard_size", 1000))
    next_index = max((int(s.name[5:10]) for s in shards), default=-1) + 1
    writer = None
    earlier, start = float(meta.get("seconds_before_resume", 0.0)), time.time()
    with tqdm(total=total, initial=len(done_ids), unit="utt", desc="teacher cache", dynamic_ncols=True,
              file=terminal()) as bar:  # on the terminal also while the output goes to a log (None: stderr)
        for audio, lengths, cuts in loader:
            with torch.no_grad():
                feats, feat_len = preprocessor(input_signal=audio.to(device), length=lengths.to(device))
                enc, enc_len, logp, hidden = wrapper(feats, feat_len, layout.hidden_layers)
            for i, cut in enumerate(cuts):
                if writer is None:
                    writer = _ShardWriter(folder, next_index)
                    next_index += 1
                writer.add(cut, _arrays_of(i, int(enc_len[i]), enc, logp, hidden, layout), frame_shift)
                if len(writer.cuts) >= shard_size:
                    writer.close()
                    writer = None
                    _save_progress(folder, meta, earlier + time.time() - start)
            bar.update(len(cuts))
    if writer is not None:
        writer.close()
    shards = _finished_shards(folder)
    CutSet.from_files([str(s) for s in shards]).to_file(folder / "cuts.jsonl.gz")
    seconds = earlier + time.time() - start
    meta.update(complete=True, seconds_before_resume=round(seconds, 1), summary=_summary(folder, shards, seconds))
    (folder / META).write_text(json.dumps(meta, indent=1))
    s = meta["summary"]
    log.info("teacher cache %s: %d utterances, %.2f h, %.1f kB per audio-second, %.1f MB on disk, %.0f s",
             folder, s["utterances"], s["audio_hours"], s["bytes_per_audio_second_total"] / 1e3, s["disk_bytes"] / 1e6,
             s["build_seconds"])  # fmt: skip
    return folder
