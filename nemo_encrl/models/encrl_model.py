"""EncRL stage 1 as a NeMo model: a small Conformer student aligned with a frozen Conformer-CTC teacher.

The student is a complete NeMo CTC-BPE model (the teacher's preprocessor and tokenizer, its own
Conformer encoder and a `ConvASRDecoder` head over the teacher's vocabulary), so NeMo's data
loaders, WER metric, decoding and `transcribe()` all work on it unchanged. Training replaces the CTC
objective by the alignment losses of `nemo_encrl.losses`; stage 2 keeps the student and drops the
teacher and the projection heads.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer
from omegaconf import DictConfig, OmegaConf, open_dict

from nemo.collections.asr.models import EncDecCTCModelBPE
from nemo.utils import logging, model_utils

from nemo_encrl.losses import ctc_kl_loss, frame_clip_loss, hidden_layer_pairs, masked_mse, utterance_clip_loss
from nemo_encrl.models.cached_teacher import CachedTeacherMixin
from nemo_encrl.models.teacher_checkpoint import TeacherFreeCheckpointMixin
from nemo_encrl.modules import TeacherWrapper
from nemo_encrl.modules.teacher_wrapper import inference_features
from nemo_encrl.tokenizer import export_tokenizer, process_tokenizer_dir

__all__ = ["EncRLModel", "EncRLConfigError"]

# preprocessor fields that change the features; student and teacher must agree on all of them
PREPROCESSOR_KEYS = ("sample_rate", "features", "window_size", "window_stride", "window", "n_fft", "normalize",
                     "log", "frame_splicing")  # fmt: skip
LOSS_TERMS = ("clip", "mse_logprobs", "mse_encoder", "kl", "hidden", "ctc")


class EncRLConfigError(ValueError):
    pass


def _teacher_summary(teacher) -> DictConfig:
    """What the stage-1 model keeps of the teacher: enough to rebuild its encoder and head."""
    return OmegaConf.create({
        "target": f"{type(teacher).__module__}.{type(teacher).__name__}",
        "preprocessor": OmegaConf.to_container(teacher.cfg.preprocessor),
        "encoder": OmegaConf.to_container(teacher.cfg.encoder),
        "decoder": OmegaConf.to_container(teacher.cfg.decoder),
    })  # fmt: skip


def derive_config(cfg: DictConfig, teacher) -> DictConfig:
    """First creation from a teacher: copy its preprocessor and tokenizer, head over its vocabulary."""
    from nemo.collections.asr.models import EncDecCTCModelBPE as BPE

    if not isinstance(teacher, BPE):
        raise EncRLConfigError(
            f"teacher is a {type(teacher).__name__}: EncRL needs a BPE CTC teacher (EncDecCTCModelBPE) whose "
            "tokenizer the student inherits; character-vocabulary teachers are not supported yet"
        )
    cfg = copy.deepcopy(cfg)
    t_pre = teacher.cfg.preprocessor
    with open_dict(cfg):
        if cfg.get("preprocessor") is not None:
            for key in PREPROCESSOR_KEYS:
                mine, theirs = cfg.preprocessor.get(key), t_pre.get(key)
                if mine is not None and mine != theirs:
                    raise EncRLConfigError(
                        f"model.preprocessor.{key}={mine!r} differs from the teacher's {theirs!r}: the student must "
                        "see the teacher's features; remove model.preprocessor to copy the teacher's"
                    )
        cfg.preprocessor = copy.deepcopy(t_pre)
        cfg.sample_rate = teacher.cfg.sample_rate
        cfg.encoder.feat_in = t_pre.features
        tok_dir = Path(cfg.get("tokenizer_dir") or process_tokenizer_dir("encrl_tokenizer_"))
        try:
            cfg.tokenizer = {"dir": str(export_tokenizer(teacher, tok_dir)), "type": "bpe"}
        except FileNotFoundError as e:
            raise EncRLConfigError(f"the teacher's tokenizer: {e}") from e
        cfg.decoder = {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": None,
                       "num_classes": -1, "vocabulary": []}  # fmt: skip
        cfg.teacher.model = _teacher_summary(teacher)
    return cfg


class EncRLModel(TeacherFreeCheckpointMixin, CachedTeacherMixin, EncDecCTCModelBPE):
    """Stage 1 of EncRL (Hannan et al., 2025): CLIP + MSE alignment of a student with a frozen teacher."""

    def __init__(self, cfg: DictConfig, trainer: Trainer | None = None):
        cfg = model_utils.convert_model_config_to_dict_config(cfg)
        loaded = None
        if cfg.get("teacher") is None:
            raise EncRLConfigError("model.teacher is missing: set model.teacher.path or model.teacher.pretrained_name")
        if cfg.teacher.get("model") is None:  # new model; a restored one carries the teacher in its config
            from nemo_encrl.teacher import load_ctc_model

            loaded = load_ctc_model(path=cfg.teacher.get("path"), pretrained_name=cfg.teacher.get("pretrained_name"))
            cfg = derive_config(cfg, loaded)
        super().__init__(cfg=cfg, trainer=trainer)

        self.teacher = TeacherWrapper(self.cfg.teacher.model, dtype=self.cfg.teacher.get("dtype", "float32"))
        if loaded is not None:
            if loaded.decoder.num_classes_with_blank != self.decoder.num_classes_with_blank:
                raise EncRLConfigError(
                    f"teacher head has {loaded.decoder.num_classes_with_blank} classes but its tokenizer gives "
                    f"{self.decoder.num_classes_with_blank}: the teacher .nemo is inconsistent"
                )
            self.teacher.load_from(loaded)
            del loaded
        self._setup_frame_rate()
        self._setup_alignment_heads()
        if self.cfg.teacher.get("cache") and not self._is_model_being_restored():
            self.teacher_cache = self._open_teacher_cache()

    # ----------------------------------------------------------------------------------------- setup
    def _setup_frame_rate(self) -> None:
        s, t = int(self.encoder.subsampling_factor), self.teacher.subsampling_factor
        self.pool_teacher, self.pool_student = 1, 1
        if s == t:
            return
        mode = self.cfg.get("frame_rate_mismatch", "error")
        ratio = max(s, t) // min(s, t)
        if mode != "pool" or ratio * min(s, t) != max(s, t):
            raise EncRLConfigError(
                f"student subsampling_factor {s} differs from the teacher's {t}: set model.encoder.subsampling_factor"
                f"={t}, or model.frame_rate_mismatch=pool (needs one factor to divide the other)"
            )
        if s > t:
            self.pool_teacher = ratio
        else:
            self.pool_student = ratio
        logging.info(f"EncRL: student frames every {s}x, teacher {t}x; average-pooling by {ratio} to align")

    def _setup_alignment_heads(self) -> None:
        loss = self.cfg.loss
        unknown = set(loss.keys()) - set(LOSS_TERMS)
        if unknown:
            raise EncRLConfigError(f"unknown model.loss terms {sorted(unknown)}; known: {list(LOSS_TERMS)}")
        if not any(term.get("weight", 0) > 0 for term in loss.values()):
            raise EncRLConfigError("every model.loss term has weight 0: nothing to train")
        d_s, d_t = int(self.encoder._feat_out), self.teacher.d_model
        clip = loss.get("clip", {})
        proj_dim = clip.get("proj_dim")
        self.clip_student_proj = self.clip_teacher_proj = None
        if clip.get("weight", 0) > 0:
            if proj_dim:  # both sides into a shared space, as CLIP does
                self.clip_student_proj = torch.nn.Linear(d_s, proj_dim)
                self.clip_teacher_proj = torch.nn.Linear(d_t, proj_dim)
            elif d_s != d_t:  # student into the teacher's space
                self.clip_student_proj = torch.nn.Linear(d_s, d_t)
        temperature = float(clip.get("temperature", 0.07))
        self.clip_log_inv_temperature = torch.nn.Parameter(
            torch.tensor(math.log(1.0 / temperature)), requires_grad=bool(clip.get("learnable_temperature", False))
        )
        self.encoder_proj = (
            torch.nn.Linear(d_s, d_t) if loss.get("mse_encoder", {}).get("weight", 0) > 0 and d_s != d_t else None
        )
        try:
            self.hidden_pairs = hidden_layer_pairs(loss, len(self.encoder.layers), len(self.teacher.encoder.layers))
        except ValueError as e:
            raise EncRLConfigError(str(e)) from e
        self.hidden_proj = torch.nn.ModuleList(
            [torch.nn.Linear(d_s, d_t) if d_s != d_t else torch.nn.Identity() for _ in self.hidden_pairs]
        )

    def setup_optimizer_param_groups(self):
        """Only trainable parameters reach the optimizer: the frozen teacher is not among them."""
        self._optimizer_param_groups = [{"params": [p for p in self.parameters() if p.requires_grad]}]

    # --------------------------------------------------------------------------------------- forward
    @staticmethod
    def _pooled_lengths(lengths: torch.Tensor, factor: int) -> torch.Tensor:
        return lengths if factor == 1 else torch.div(lengths + factor - 1, factor, rounding_mode="floor")

    @classmethod
    def _pool_time(cls, x: torch.Tensor, lengths: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
        if factor == 1:
            return x, lengths
        pooled = F.avg_pool1d(x.transpose(1, 2), kernel_size=factor, stride=factor, ceil_mode=True).transpose(1, 2)
        return pooled, cls._pooled_lengths(lengths, factor)

    def distill_forward(self, input_signal: torch.Tensor, input_signal_length: torch.Tensor,
                        cached_teacher: dict | None = None) -> dict:  # fmt: skip
        """Student and teacher on the same features; everything the losses need, frame-aligned.
        `cached_teacher` (a collated teacher-cache batch) replaces the teacher's forward pass."""
        teacher_in = None
        if cached_teacher is None and self.training:  # first: NeMo dithers the waveform in place
            teacher_in = inference_features(self.preprocessor, input_signal, input_signal_length)
        features, feat_len = self.preprocessor(input_signal=input_signal, length=input_signal_length)
        if cached_teacher is None:
            t_enc, t_len, t_logp, t_hidden = self.teacher(*(teacher_in or (features, feat_len)),
                                                          tuple(j for _, j in self.hidden_pairs))  # fmt: skip
        else:
            t_enc, t_len, t_logp, t_hidden = self._cached_teacher(cached_teacher)
            self._check_cached_frames(cached_teacher, feat_len, t_len)

        s_hidden: dict[int, torch.Tensor] = {}
        hooks = [
            self.encoder.layers[i].register_forward_hook(lambda m, a, out, i=i: s_hidden.__setitem__(i, out))
            for i, _ in self.hidden_pairs
        ]
        student_in = features
        if self.spec_augmentation is not None and self.training:
            student_in = self.spec_augmentation(input_spec=features, length=feat_len)
        try:
            s_enc, s_len = self.encoder(audio_signal=student_in, length=feat_len)
        finally:
            for h in hooks:
                h.remove()
        s_logp = self.decoder(encoder_output=s_enc)
        s_enc = s_enc.transpose(1, 2)

        # align frame rates (pooling only when configured) and crop to a common length
        s_enc_a, s_len_a = self._pool_time(s_enc, s_len, self.pool_student)
        s_logp_a, _ = self._pool_time(s_logp, s_len, self.pool_student)
        t_len_a = self._pooled_lengths(t_len, self.pool_teacher)
        if t_enc is not None:
            t_enc = self._pool_time(t_enc, t_len, self.pool_teacher)[0]
        if t_logp is not None:
            t_logp = self._pool_time(t_logp, t_len, self.pool_teacher)[0]
        if t_logp is not None and (self.pool_student > 1 or self.pool_teacher > 1):
            s_logp_a, t_logp = F.log_softmax(s_logp_a, -1), F.log_softmax(t_logp, -1)
        T = min(s_enc_a.shape[1], *(x.shape[1] for x in (t_enc, t_logp, *t_hidden.values()) if x is not None))
        lengths = torch.minimum(torch.minimum(s_len_a, t_len_a), torch.full_like(s_len_a, T))
        hidden = [
            (self._pool_time(s_hidden[i], s_len, self.pool_student)[0][:, :T],
             self._pool_time(t_hidden[j], t_len, self.pool_teacher)[0][:, :T])
            for i, j in self.hidden_pairs
        ]  # fmt: skip
        return {
            "student_enc": s_enc_a[:, :T], "teacher_enc": None if t_enc is None else t_enc[:, :T],
            "student_logp": s_logp_a[:, :T], "teacher_logp": None if t_logp is None else t_logp[:, :T],
            "lengths": lengths, "hidden": hidden,
            "student_logp_native": s_logp, "student_len_native": s_len,
        }  # fmt: skip

    def alignment_losses(self, out: dict) -> dict[str, torch.Tensor]:
        """Each configured term with weight > 0, unweighted (the weights are applied in `total_loss`)."""
        loss_cfg, lengths, terms = self.cfg.loss, out["lengths"], {}
        if loss_cfg.get("clip", {}).get("weight", 0) > 0:
            s, t = out["student_enc"], out["teacher_enc"]
            if self.clip_student_proj is not None:
                s = self.clip_student_proj(s)
            if self.clip_teacher_proj is not None:
                t = self.clip_teacher_proj(t)
            temperature = torch.exp(-self.clip_log_inv_temperature)
            if loss_cfg.clip.get("level", "utterance") == "frame":
                terms["clip"] = frame_clip_loss(s, t, lengths, temperature, int(loss_cfg.clip.get("max_frames", 2048)))
            else:
                terms["clip"] = utterance_clip_loss(s, t, lengths, temperature)
        if loss_cfg.get("mse_logprobs", {}).get("weight", 0) > 0:
            terms["mse_logprobs"] = masked_mse(out["student_logp"], out["teacher_logp"], lengths)
        if loss_cfg.get("mse_encoder", {}).get("weight", 0) > 0:
            s = self.encoder_proj(out["student_enc"]) if self.encoder_proj is not None else out["student_enc"]
            terms["mse_encoder"] = masked_mse(s, out["teacher_enc"], lengths)
        if loss_cfg.get("kl", {}).get("weight", 0) > 0:
            terms["kl"] = ctc_kl_loss(out["student_logp"], out["teacher_logp"], lengths,
                                      float(loss_cfg.kl.get("temperature", 1.0)))  # fmt: skip
        if self.hidden_pairs:
            terms["hidden"] = sum(
                masked_mse(proj(s), t, lengths) for proj, (s, t) in zip(self.hidden_proj, out["hidden"])
            ) / len(self.hidden_pairs)
        return terms

    def total_loss(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(float(self.cfg.loss[name].weight) * value for name, value in terms.items())

    def _step_losses(self, batch) -> tuple[dict, dict[str, torch.Tensor], torch.Tensor]:
        signal, signal_len, transcript, transcript_len, *cached = batch
        out = self.distill_forward(signal, signal_len, cached[0] if cached else None)
        terms = self.alignment_losses(out)
        if self.cfg.loss.get("ctc", {}).get("weight", 0) > 0:
            terms["ctc"] = self.loss(log_probs=out["student_logp_native"], targets=transcript,
                                     input_lengths=out["student_len_native"], target_lengths=transcript_len)  # fmt: skip
        return out, terms, self.total_loss(terms)

    # ------------------------------------------------------------------------------------- lightning
    def training_step(self, batch, batch_nb):
        out, terms, loss = self._step_losses(batch)
        logs = {f"train_{k}": v.detach() for k, v in terms.items()}
        logs.update(
            train_loss=loss.detach(),
            learning_rate=self._optimizer.param_groups[0]["lr"],
            clip_temperature=torch.exp(-self.clip_log_inv_temperature.detach()),
            global_step=torch.tensor(self.trainer.global_step, dtype=torch.float32),
        )
        log_every = self._trainer.log_every_n_steps if self._trainer is not None else 1
        if (batch_nb + 1) % log_every == 0:
            transcript, transcript_len = batch[2], batch[3]
            self.wer.update(predictions=out["student_logp_native"], targets=transcript,
                            targets_lengths=transcript_len, predictions_lengths=out["student_len_native"])  # fmt: skip
            wer, _, _ = self.wer.compute()
            self.wer.reset()
            logs["training_batch_wer"] = wer
        return {"loss": loss, "log": logs}

    def validation_pass(self, batch, batch_idx, dataloader_idx=0):
        out, terms, loss = self._step_losses(batch)
        transcript, transcript_len = batch[2], batch[3]
        self.wer.update(predictions=out["student_logp_native"], targets=transcript,
                        targets_lengths=transcript_len, predictions_lengths=out["student_len_native"])  # fmt: skip
        wer, wer_num, wer_denom = self.wer.compute()
        self.wer.reset()
        metrics = {f"val_{k}": v.detach() for k, v in terms.items()}
        metrics.update(val_loss=loss.detach(), val_wer_num=wer_num, val_wer_denom=wer_denom, val_wer=wer)
        return metrics

    def multi_validation_epoch_end(self, outputs, dataloader_idx: int = 0):
        metrics = super().multi_validation_epoch_end(outputs, dataloader_idx)
        for name in LOSS_TERMS:  # epoch means of every alignment loss, next to val_loss and val_wer
            key = f"val_{name}"
            if outputs and key in outputs[0]:
                metrics["log"][key] = torch.stack([o[key] for o in outputs]).mean()
        return metrics
