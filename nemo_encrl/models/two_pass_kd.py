"""Three-stage distillation of a two-pass model (Samsung, ASRU 2021, arXiv 2201.02741) into a smaller one.

`kd.stage` picks what trains and what it learns from the frozen teacher (a TwoPassModel):
  rnnt      the student's encoder + RNN-T: RNN-T loss + rnnt_kd x collapsed-lattice KL (Panchapagesan et al.
            2021) + encoder_mse x MSE to the teacher's encoder output; the attention decoder is frozen.
  rescorer  the student's attention decoder only (encoder, RNN-T frozen, in eval mode): ce x cross-entropy on
            the transcripts + attention_kd x token KL at `temperature` on the transcripts and, with
            `kd.nbest`, nbest_weight x the same on the student's own first-pass N-best (decoded once).
  deep      everything: RNN-T + aux_attn.loss_weight x CE, plus the KD terms whose weights are not 0.
The teacher stays frozen and in eval mode. The saved .nemo is the student alone, a plain TwoPassModel.
"""

from __future__ import annotations

import contextlib
import copy

import torch
from lightning.pytorch import Trainer
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from nemo.utils import logging, model_utils

from nemo_encrl.losses import ctc_kl_loss, masked_mse
from nemo_encrl.losses.rnnt_kd import lattice_kd_loss
from nemo_encrl.models.train_dataset import CustomTrainDatasetMixin
from nemo_encrl.models.two_pass import TwoPassModel
from nemo_encrl.modules.attention_rescorer import pad_token_lists
from nemo_encrl.modules.teacher_wrapper import inference_features

STAGES = ("rnnt", "rescorer", "deep")
PLAIN_TWO_PASS = f"{TwoPassModel.__module__}.{TwoPassModel.__name__}"
FIRST_PASS = ("preprocessor", "encoder", "decoder", "joint")


class TwoPassKDError(ValueError):
    pass


class FrozenTwoPassTeacher(nn.Module):
    """The teacher's encoder, RNN-T decoder + joint and attention decoder: never trained, always in eval mode."""

    def __init__(self, model: TwoPassModel):
        super().__init__()
        self.encoder, self.decoder, self.joint, self.attention = model.encoder, model.decoder, model.joint, model.attention
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True):  # Lightning calls .train() on the whole model
        return super().train(False)

    @torch.no_grad()
    def lattice(self, encoded, transcript, transcript_len):
        decoded, _, _ = self.decoder(targets=transcript, target_length=transcript_len)
        return self.joint(encoder_outputs=encoded, decoder_outputs=decoded)


def check_teacher_fits(teacher: TwoPassModel, student_cfg: DictConfig, student_tokenizer, source: str) -> None:
    if list(teacher.tokenizer.vocab) != list(student_tokenizer.vocab):
        raise TwoPassKDError(f"model.kd.teacher.path={source}: its tokenizer ({teacher.tokenizer.vocab_size} pieces) "
                             f"differs from the student's model.tokenizer.dir={student_cfg.tokenizer.dir} "
                             f"({student_tokenizer.vocab_size}); the lattices must share one vocabulary")  # fmt: skip
    ours, theirs = ({k: v for k, v in OmegaConf.to_container(c.preprocessor, resolve=True).items() if k != "dither"}
                    for c in (student_cfg, teacher.cfg))  # fmt: skip
    if changed := sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)):
        raise TwoPassKDError(f"model.preprocessor.{changed[0]}: the student's features differ from the teacher {source}'s "
                             "(the teacher reads the student's features): use the teacher's preprocessor")  # fmt: skip
    t, s = int(teacher.cfg.encoder.subsampling_factor), int(student_cfg.encoder.subsampling_factor)
    if t != s:
        raise TwoPassKDError(f"model.encoder.subsampling_factor={s}, the teacher {source} has {t}: the lattices "
                             "are compared frame by frame")  # fmt: skip


class TwoPassKDModel(CustomTrainDatasetMixin, TwoPassModel):
    def __init__(self, cfg: DictConfig, trainer: Trainer | None = None):
        from nemo_encrl.teacher import load_asr_model

        cfg = model_utils.convert_model_config_to_dict_config(cfg)
        kd = cfg.get("kd")
        if kd is None or kd.get("stage") not in STAGES:
            raise TwoPassKDError(f"model.kd.stage={None if kd is None else kd.get('stage')!r}: choose one of {STAGES}")
        source = kd.teacher.get("path")
        teacher = load_asr_model(path=source, what="two-pass teacher", kind=TwoPassModel)
        with open_dict(cfg):
            cfg.target = PLAIN_TWO_PASS  # what the saved .nemo restores as
        super().__init__(cfg=cfg, trainer=trainer)
        check_teacher_fits(teacher, self.cfg, self.tokenizer, source)
        if teacher.attention.num_classes != self.attention.num_classes:
            raise TwoPassKDError(f"model.aux_attn: the student's attention decoder has {self.attention.num_classes} "
                                 f"outputs, the teacher's {teacher.attention.num_classes} (special_tokens differ?)")  # fmt: skip
        self.teacher = FrozenTwoPassTeacher(teacher)
        del teacher
        student_dim, teacher_dim = self.encoder._feat_out, self.teacher.encoder._feat_out
        self.kd_projection = nn.Linear(student_dim, teacher_dim) if float(kd.get("encoder_mse", 0)) > 0 else None
        self.stage = kd.stage
        self._frozen = {"rnnt": ("attention",), "rescorer": FIRST_PASS, "deep": ()}[self.stage]
        for name in self._frozen:
            getattr(self, name).requires_grad_(False)
        self.train(self.training)  # frozen parts to eval now: Lightning records every module's mode and restores it
        if self.stage == "rescorer":  # the frozen first pass sees clean features, as its stored N-best and the teacher
            self.spec_augmentation = None
        logging.info(f"two-pass KD stage '{self.stage}': frozen {list(self._frozen) or 'nothing'}")

    def train(self, mode: bool = True):
        super().train(mode)
        for name in getattr(self, "_frozen", ()):  # frozen parts keep eval mode: BatchNorm statistics and dropout stay as they are
            getattr(self, name).train(False)
        return self

    # ---- the rescorer stage's N-best, decoded once ------------------------------------------------------------
    def _train_dataset(self):
        source = (self.cfg.get("kd") or {}).get("nbest")
        if not source:
            return None
        from nemo_encrl.data.nbest_store import LhotseSpeechToTextWithNBest, read_nbest_store

        return LhotseSpeechToTextWithNBest(self.tokenizer, read_nbest_store(source), str(source))

    # ---- losses ----------------------------------------------------------------------------------------------
    def _weight(self, key: str, default: float = 0.0) -> float:
        return float(self.cfg.kd.get(key, default))

    def kd_losses(self, batch) -> dict[str, torch.Tensor]:
        """Every loss term of this stage on one batch (unweighted), keyed by name."""
        signal, signal_len, transcript, transcript_len, *extra = batch
        feats, feat_len = inference_features(self.preprocessor, signal, signal_len)  # before the student's dither
        with torch.no_grad():
            t_enc, t_len = self.teacher.encoder(audio_signal=feats, length=feat_len)
        with torch.no_grad() if self.stage == "rescorer" else contextlib.nullcontext():
            enc, enc_len = self.forward(input_signal=signal, input_signal_length=signal_len)
        out = {}
        if self.stage != "rescorer":
            decoded, target_len, _ = self.decoder(targets=transcript, target_length=transcript_len)
            joint = self.joint(encoder_outputs=enc, decoder_outputs=decoded)
            out["rnnt"] = self.loss(log_probs=joint, targets=transcript, input_lengths=enc_len, target_lengths=target_len)
            if self._weight("rnnt_kd") > 0:
                t_joint = self.teacher.lattice(t_enc, transcript, transcript_len)
                T, U = min(joint.shape[1], t_joint.shape[1]), int(transcript_len.max()) + 1
                out["rnnt_kd"] = lattice_kd_loss(joint[:, :T, :U], t_joint[:, :T, :U], transcript, torch.minimum(enc_len, t_len),
                                                 transcript_len, blank=self.decoder.blank_idx)  # fmt: skip
            if self.kd_projection is not None:
                T = min(enc.shape[2], t_enc.shape[2])
                out["encoder_mse"] = masked_mse(self.kd_projection(enc[:, :, :T].transpose(1, 2)), t_enc[:, :, :T].transpose(1, 2),
                                                torch.minimum(enc_len, t_len))  # fmt: skip
        if self.stage != "rnnt":
            out["ce"] = self.attention.loss(enc, enc_len, transcript, transcript_len)
            if self._weight("attention_kd") > 0:
                out["attention_kd"] = self._attention_kd(enc, enc_len, t_enc, t_len, transcript, transcript_len)
                if extra and self._weight("nbest_weight") > 0:
                    out["nbest_kd"] = self._nbest_kd(enc, enc_len, t_enc, t_len, extra[0])
        return out

    def _attention_kd(self, enc, enc_len, t_enc, t_len, tokens, token_len) -> torch.Tensor:
        log_probs, _, _ = self.attention(enc, enc_len, tokens, token_len)
        with torch.no_grad():
            t_log_probs, _, _ = self.teacher.attention(t_enc, t_len, tokens, token_len)
        return ctc_kl_loss(log_probs, t_log_probs, token_len.long() + 1, self._weight("temperature", 1.0))

    def _nbest_kd(self, enc, enc_len, t_enc, t_len, nbests: list[list[list[int]]]) -> torch.Tensor:
        """The token KL on every cached first-pass hypothesis of the batch's utterances that the rescorer can
        read (an undertrained first pass can emit more tokens than its positions; scoring gives those -inf)."""
        fits = lambda h: self.attention.reads(h) and self.teacher.attention.reads(h)  # noqa: E731
        owner = [b for b, hyps in enumerate(nbests) for h in hyps if fits(h)]
        flat = [h for hyps in nbests for h in hyps if fits(h)]
        if not flat:
            return enc.new_zeros(())
        tokens, lengths = pad_token_lists(flat, enc.device)
        idx = torch.tensor(owner, device=enc.device)
        return self._attention_kd(enc[idx], enc_len[idx], t_enc[idx], t_len[idx], tokens, lengths)

    def training_step(self, batch, batch_nb):
        terms = self.kd_losses(batch)
        weights = {"rnnt": 1.0, "rnnt_kd": self._weight("rnnt_kd"), "encoder_mse": self._weight("encoder_mse"),
                   "ce": self._weight("ce", 1.0) if self.stage == "rescorer" else self.attn_loss_weight,
                   "attention_kd": self._weight("attention_kd"),
                   "nbest_kd": self._weight("attention_kd") * self._weight("nbest_weight")}  # fmt: skip
        loss = sum(weights[k] * v for k, v in terms.items())
        logs = {f"train_{k}": v.detach() for k, v in terms.items()} | {
            "train_loss": loss.detach(), "learning_rate": self._optimizer.param_groups[0]["lr"],
            "global_step": torch.tensor(self.trainer.global_step, dtype=torch.float32)}  # fmt: skip
        self.log_dict(logs)
        return {"loss": loss}

    # ---- saving: the student alone --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _student_only(self):
        teacher, projection, cfg = self.teacher, self.kd_projection, copy.deepcopy(self._cfg)
        del self.teacher
        self.kd_projection = None
        with open_dict(self._cfg):
            self._cfg.pop("kd", None)
        try:
            yield
        finally:
            self.teacher, self.kd_projection, self._cfg = teacher, projection, cfg

    def save_to(self, save_path: str):
        with self._student_only():
            super().save_to(save_path)
        logging.info(f"saved the student alone (plain TwoPassModel) to {save_path}")
