"""Stage 1 from a teacher cache: the training loader also yields the teacher's stored outputs, which
replace its forward pass; everything is checked against the cache's record before the first step."""

from __future__ import annotations

import torch

from nemo.utils import logging

from nemo_encrl.models.train_dataset import CustomTrainDatasetMixin


class CachedTeacherMixin(CustomTrainDatasetMixin):
    """For the models that learn from a frozen teacher (EncRL stage 1, stage 2 with a KL term):
    `model.teacher.cache` switches the training steps to the cache (validation and any run without a
    cache keep the teacher online)."""

    teacher_cache = None

    def _open_teacher_cache(self):
        """The cache named by model.teacher.cache, checked against this run before any training step:
        same teacher weights, same features, every output the losses read, every training cut."""
        from nemo_encrl.cache import TeacherCache, TeacherCacheError
        from nemo_encrl.cache.layout import cache_identity, describe_differences
        from nemo_encrl.cache.reader import check_cacheable_inputs, train_cuts

        need = self._cache_needs()
        cache = TeacherCache(self.cfg.teacher.cache, need)
        where = f"teacher cache {cache.folder}"
        check_cacheable_inputs(self.cfg.train_ds)
        if not self.cfg.train_ds.get("use_lhotse"):
            raise TeacherCacheError("model.teacher.cache needs model.train_ds.use_lhotse=true (the cache is read by lhotse)")
        now = cache_identity(self.teacher.encoder, self.teacher.decoder, self.cfg.preprocessor)
        diff = describe_differences({k: cache.meta.get(k) for k in now}, now)
        if diff:
            raise TeacherCacheError(f"{where} was built for another teacher or other features ({'; '.join(diff)}): "
                                   "rebuild it with `nemo-encrl cache-teacher` and this config")  # fmt: skip
        missing = cache.layout.missing_for(need)
        if missing:
            raise TeacherCacheError(f"{where} lacks {', '.join(missing)}: rebuild it with this config "
                                   "(teacher_cache.hidden_layers=all stores every teacher layer)")  # fmt: skip
        if not (self.cfg.train_ds.get("tarred_audio_filepaths") or self.cfg.train_ds.get("shar_path")):
            absent = cache.missing(c.id for c in train_cuts(self.cfg.train_ds))
            if absent:
                raise TeacherCacheError(f"{where} has no teacher outputs for {len(absent)} training cut(s), e.g. "
                                       f"{absent[0]!r}: rebuild it for this model.train_ds")  # fmt: skip
        logging.info(f"{type(self).__name__} reads the teacher's outputs from {cache.folder} ({cache.layout.fields_for(need)})")
        return cache

    def _cache_needs(self):
        """What this run's losses read from the teacher (from the config: the teacher may not exist yet)."""
        from nemo_encrl.cache import needed_layout

        return needed_layout(self.cfg, int(self.cfg.teacher.model.encoder.n_layers))

    def _train_dataset(self):
        """With model.teacher.cache, the training loader also yields the teacher's cached outputs."""
        cache_dir = self.cfg.get("teacher", {}).get("cache")
        if not cache_dir:
            return None
        from nemo_encrl.cache import TeacherCache
        from nemo_encrl.data.cached_teacher_dataset import LhotseSpeechToTextWithTeacherCache

        return LhotseSpeechToTextWithTeacherCache(self.tokenizer, TeacherCache(cache_dir, self._cache_needs()))

    def _cached_teacher(self, cached: dict) -> tuple:
        from nemo_encrl.cache.reader import teacher_outputs

        return teacher_outputs(cached, self.teacher_cache.vocab_size, tuple(j for _, j in self.hidden_pairs))

    def _check_cached_frames(self, cached: dict, feat_len: torch.Tensor, t_len: torch.Tensor) -> None:
        """The cached frame counts must be what the teacher's subsampling makes of these features."""
        from nemo.collections.asr.parts.submodules.subsampling import calc_length

        from nemo_encrl.cache import TeacherCacheError

        pre = self.teacher.encoder.pre_encode
        expected = calc_length(feat_len, all_paddings=pre._left_padding + pre._right_padding, kernel_size=pre._kernel_size,
                               stride=pre._stride, ceil_mode=pre._ceil_mode, repeat_num=pre._sampling_num)  # fmt: skip
        bad = (t_len.to(expected.device) != expected).nonzero().flatten().tolist()
        if bad:
            i = bad[0]
            raise TeacherCacheError(
                f"teacher cache {self.teacher_cache.folder}: cut {cached['cut_ids'][i]!r} has {int(t_len[i])} cached "
                f"frames but its audio gives {int(expected[i])}: the audio changed since the cache was built; rebuild it"
            )
