"""NeMo's lhotse speech-to-text dataset plus the teacher's cached outputs for every cut of the batch.

Only the mapping from a CutSet to tensors changes: NeMo's lhotse dataloader keeps doing the sampling,
bucketing, shuffling, DDP sharding and worker processes.
"""

from __future__ import annotations

from nemo.collections.asr.data.audio_to_text_lhotse import LhotseSpeechToTextBpeDataset

from nemo_encrl.cache.reader import TeacherCache


class LhotseSpeechToTextWithTeacherCache(LhotseSpeechToTextBpeDataset):
    """Batches of (audio, audio_len, tokens, token_len, teacher), `teacher` from `TeacherCache.collate`."""

    def __init__(self, tokenizer, cache: TeacherCache):
        super().__init__(tokenizer=tokenizer, return_cuts=True)
        self.cache = cache

    def __getitem__(self, cuts):
        audio, audio_lens, tokens, token_lens, cuts = super().__getitem__(cuts)
        return audio, audio_lens, tokens, token_lens, self.cache.collate(cuts)
