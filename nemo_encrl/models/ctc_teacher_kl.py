"""Stage 2 with the teacher's posteriors: CTC on the transcripts + weight x KL(teacher || student) per
frame on the CTC posteriors, as distil-whisper adds a KL term to its label loss. The teacher's log-probs
come from a teacher cache when `model.teacher.cache` is set, else from the frozen teacher online.

Training only: the saved .nemo is the student alone, a plain EncDecCTCModelBPE (no teacher weights, no
teacher config), so stock NeMo restores it without this package.
"""

from __future__ import annotations

import contextlib
import copy

import torch
from lightning.pytorch import Trainer
from omegaconf import DictConfig, open_dict

from nemo.collections.asr.models import EncDecCTCModelBPE
from nemo.utils import logging, model_utils

from nemo_encrl.losses import ctc_kl_loss
from nemo_encrl.models.cached_teacher import CachedTeacherMixin
from nemo_encrl.models.teacher_checkpoint import TeacherFreeCheckpointMixin
from nemo_encrl.modules import TeacherWrapper
from nemo_encrl.modules.teacher_wrapper import inference_features

PLAIN_CTC = f"{EncDecCTCModelBPE.__module__}.{EncDecCTCModelBPE.__name__}"
TRAINING_ONLY_KEYS = ("teacher", "distillation")


class StudentKLError(ValueError):
    pass


class CTCTeacherKLModel(TeacherFreeCheckpointMixin, CachedTeacherMixin, EncDecCTCModelBPE):
    hidden_pairs = ()  # the cache reader's hint layers: none, only the log-probs are read

    def __init__(self, cfg: DictConfig, trainer: Trainer | None = None):
        from nemo_encrl.models.encrl_model import _teacher_summary
        from nemo_encrl.teacher import load_ctc_model

        cfg = model_utils.convert_model_config_to_dict_config(cfg)
        loaded = None
        with open_dict(cfg):
            cfg.target = PLAIN_CTC  # what the saved .nemo restores as
            if cfg.teacher.get("model") is None:
                loaded = load_ctc_model(path=cfg.teacher.get("path"), pretrained_name=cfg.teacher.get("pretrained_name"))
                cfg.teacher.model = _teacher_summary(loaded)
        super().__init__(cfg=cfg, trainer=trainer)
        self.teacher = TeacherWrapper(self.cfg.teacher.model, dtype=self.cfg.teacher.get("dtype", "float32"))
        if loaded is not None:
            if loaded.decoder.num_classes_with_blank != self.decoder.num_classes_with_blank:
                raise StudentKLError(f"teacher {cfg.teacher.get('path') or cfg.teacher.get('pretrained_name')} has "
                                     f"{loaded.decoder.num_classes_with_blank} output classes, the student "
                                     f"{self.decoder.num_classes_with_blank}: the KL term needs the teacher's tokenizer")  # fmt: skip
            self.teacher.load_from(loaded)
            del loaded
        s, t = int(self.encoder.subsampling_factor), self.teacher.subsampling_factor
        if s != t:
            raise StudentKLError(f"student subsampling_factor {s} differs from the teacher's {t}: the KL term compares "
                                 "frame by frame")  # fmt: skip
        if self.cfg.teacher.get("cache") and not self._is_model_being_restored():
            self.teacher_cache = self._open_teacher_cache()

    def _cache_needs(self):
        from nemo_encrl.cache.layout import CacheLayout

        return CacheLayout(encoder=False, logprobs="any", hidden_layers=())

    def kl_step_losses(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(CTC loss, KL term) of one training batch; a 5th batch element is the teacher cache's."""
        signal, signal_len, transcript, transcript_len, *cached = batch
        if cached:
            _, t_len, t_logp, _ = self._cached_teacher(cached[0])
        else:  # before the student's pass, which dithers the waveform in place
            _, t_len, t_logp, _ = self.teacher(*inference_features(self.preprocessor, signal, signal_len))
        log_probs, enc_len, _ = self.forward(input_signal=signal, input_signal_length=signal_len)
        t_len, t_logp = t_len.to(enc_len.device), t_logp.to(log_probs.device)
        if cached and (bad := (t_len != enc_len).nonzero().flatten().tolist()):
            raise StudentKLError(f"teacher cache {self.teacher_cache.folder}: cut {cached[0]['cut_ids'][bad[0]]!r} has "
                                 f"{int(t_len[bad[0]])} cached frames, the student {int(enc_len[bad[0]])}: rebuild the cache")  # fmt: skip
        ctc = self.loss(log_probs=log_probs, targets=transcript, input_lengths=enc_len, target_lengths=transcript_len)
        T = min(log_probs.shape[1], t_logp.shape[1])
        kl = ctc_kl_loss(log_probs[:, :T], t_logp[:, :T], torch.minimum(enc_len, t_len),
                         float(self.cfg.distillation.get("temperature", 1.0)))  # fmt: skip
        return ctc, kl

    def training_step(self, batch, batch_nb):
        ctc, kl = self.kl_step_losses(batch)
        loss = ctc + float(self.cfg.distillation.weight) * kl
        logs = {"train_loss": loss.detach(), "train_ctc": ctc.detach(), "train_kl": kl.detach(),
                "learning_rate": self._optimizer.param_groups[0]["lr"],
                "global_step": torch.tensor(self.trainer.global_step, dtype=torch.float32)}  # fmt: skip
        return {"loss": loss, "log": logs}

    @contextlib.contextmanager
    def _student_only(self):
        """The model as a plain EncDecCTCModelBPE while saving: no teacher module, no teacher config."""
        teacher, cfg = self.teacher, copy.deepcopy(self._cfg)
        del self.teacher
        with open_dict(self._cfg):
            for key in TRAINING_ONLY_KEYS:
                self._cfg.pop(key, None)
        try:
            yield
        finally:
            self.teacher, self._cfg = teacher, cfg

    def save_to(self, save_path: str):
        with self._student_only():
            super().save_to(save_path)
        logging.info(f"saved the student alone (plain EncDecCTCModelBPE) to {save_path}")
