"""A two-pass ASR model (Sainath et al. 2019; the model Samsung's ASRU 2021 paper compresses) in NeMo's terms.

One Conformer encoder feeds a streaming RNN-T first pass (NeMo's `EncDecRNNTBPEModel`: decoder + joint)
and an attention decoder that rescores the first pass's N-best at the end of the utterance. It extends
the RNN-T model the way NeMo's hybrid RNN-T/CTC model adds its `aux_ctc` head: an `aux_attn` config
section, a module built after the parent's, and a training loss RNN-T + loss_weight x attention CE
(a sum, not the hybrid's convex mix: the CE is per token, the RNN-T loss per utterance).

`self.decoding` stays NeMo's single-best RNN-T decoding (WER logging, streaming, the exported first
pass); the N-best comes from a second decoding built from `aux_attn.first_pass_decoding`.
"""

from __future__ import annotations

import torch
from lightning.pytorch import Trainer
from omegaconf import DictConfig, OmegaConf, open_dict

from nemo.collections.asr.models import EncDecRNNTBPEModel
from nemo.collections.asr.parts.utils.rnnt_utils import Hypothesis
from nemo.utils import model_utils

from nemo_encrl.losses.rnnt_torch import register_rnnt_loss
from nemo_encrl.models.two_pass_decoding import ScoredNBest, add_second_pass, nbest_from_decoding
from nemo_encrl.modules.attention_rescorer import AttentionRescorer, TwoPassConfigError, special_token_ids

DECODER_TYPES = ("rnnt", "two_pass")
RESCORING_DEFAULTS = {"decoder_type": "two_pass", "weight": 0.5, "length_bonus": 0.0}


def check_two_pass_config(cfg: DictConfig) -> None:
    """The mistakes that would otherwise surface deep inside NeMo, each named by its key."""
    from nemo.collections.asr.losses.rnnt import RNNT_LOSS_RESOLVER

    register_rnnt_loss()
    if cfg.get("aux_attn") is None:
        raise TwoPassConfigError("model.aux_attn is missing: a two-pass model needs its attention decoder section")
    name = (cfg.get("loss") or {}).get("loss_name", "default")
    if name not in RNNT_LOSS_RESOLVER:
        raise TwoPassConfigError(f"model.loss.loss_name={name!r} is not an RNN-T loss: use one of {sorted(RNNT_LOSS_RESOLVER)}")
    if cfg.joint.get("fuse_loss_wer"):
        raise TwoPassConfigError("model.joint.fuse_loss_wer=true: the two-pass model needs the joint's output itself")
    for key in ("decoder", "first_pass_decoding"):
        if cfg.aux_attn.get(key) is None:
            raise TwoPassConfigError(f"model.aux_attn.{key} is missing (see conf/two_pass/conformer_rnnt_attention_demo.yaml)")
    rescoring = cfg.aux_attn.get("rescoring") or {}
    if rescoring.get("decoder_type", "two_pass") not in DECODER_TYPES:
        raise TwoPassConfigError(f"model.aux_attn.rescoring.decoder_type={rescoring.decoder_type!r}: use {DECODER_TYPES}")


class TwoPassModel(EncDecRNNTBPEModel):
    def __init__(self, cfg: DictConfig, trainer: Trainer | None = None):
        cfg = model_utils.convert_model_config_to_dict_config(cfg)
        cfg = model_utils.maybe_update_config_version(cfg)
        check_two_pass_config(cfg)
        super().__init__(cfg=cfg, trainer=trainer)
        aux = self.cfg.aux_attn
        bos, eos, classes = special_token_ids(aux, self.tokenizer)
        with open_dict(self.cfg):  # what restore must rebuild, written back as NeMo's models do
            aux.bos_id, aux.eos_id, aux.num_classes = bos, eos, classes
            aux.rescoring = OmegaConf.merge(RESCORING_DEFAULTS, aux.get("rescoring") or {})
        self.attention = AttentionRescorer(
            feat_in=self.encoder._feat_out, bos_id=bos, eos_id=eos, num_classes=classes, decoder=aux.decoder,
            adapter=aux.get("adapter", "auto"), label_smoothing=float(aux.get("label_smoothing", 0.0)),
        )  # fmt: skip
        self.attn_loss_weight = float(aux.get("loss_weight", 0.3))
        self.nbest_decoding = self._build_nbest_decoding(aux.first_pass_decoding)

    # ---- decoding ---------------------------------------------------------------------------------------
    def _build_nbest_decoding(self, decoding_cfg: DictConfig):
        from nemo.collections.asr.parts.submodules.rnnt_decoding import RNNTBPEDecoding, RNNTBPEDecodingConfig

        full = OmegaConf.merge(OmegaConf.create(OmegaConf.to_container(OmegaConf.structured(RNNTBPEDecodingConfig))),
                               decoding_cfg)  # fmt: skip
        if full.beam.get("return_best_hypothesis", True):
            raise TwoPassConfigError("model.aux_attn.first_pass_decoding.beam.return_best_hypothesis must be false: "
                                     "the second pass rescores the whole N-best")  # fmt: skip
        full = self.set_decoding_type_according_to_loss(full)
        return RNNTBPEDecoding(decoding_cfg=full, decoder=self.decoder, joint=self.joint, tokenizer=self.tokenizer)

    @property
    def decoder_type(self) -> str:
        return self.cfg.aux_attn.rescoring.decoder_type

    def change_decoding_strategy(self, decoding_cfg: DictConfig | None = None, decoder_type: str | None = None,
                                 verbose: bool = True):  # fmt: skip
        """`decoder_type`: "two_pass" (rescored, the default) or "rnnt" (the streaming first pass alone);
        `decoding_cfg` changes the first pass's own (single-best) decoding as in NeMo."""
        if decoder_type is not None:
            if decoder_type not in DECODER_TYPES:
                raise TwoPassConfigError(f"decoder_type={decoder_type!r}: use one of {DECODER_TYPES}")
            with open_dict(self.cfg):
                self.cfg.aux_attn.rescoring.decoder_type = decoder_type
        if decoding_cfg is not None or decoder_type is None:
            super().change_decoding_strategy(decoding_cfg, verbose=verbose)

    def set_rescoring(self, weight: float, length_bonus: float) -> None:
        with open_dict(self.cfg):
            self.cfg.aux_attn.rescoring.weight = float(weight)
            self.cfg.aux_attn.rescoring.length_bonus = float(length_bonus)

    @property
    def nbest_size(self) -> int:
        """How many distinct first-pass hypotheses the second pass rescores (the beam size)."""
        return int(self.cfg.aux_attn.first_pass_decoding.beam.beam_size)

    def score_nbest(self, encoded: torch.Tensor, encoded_len: torch.Tensor) -> list[ScoredNBest]:
        """First-pass N-best with s1 and s2 for every hypothesis (encoder output [B, D, T])."""
        nbests = nbest_from_decoding(self.nbest_decoding, encoded, encoded_len, self.nbest_size)
        add_second_pass(nbests, self.attention, encoded, encoded_len)
        return nbests

    def two_pass_hypotheses(self, encoded: torch.Tensor, encoded_len: torch.Tensor) -> list[Hypothesis]:
        rescoring = self.cfg.aux_attn.rescoring
        weight, bonus = float(rescoring.weight), float(rescoring.length_bonus)
        out = []
        for nbest in self.score_nbest(encoded, encoded_len):
            i = nbest.best(weight, bonus)
            if i < 0:
                out.append(Hypothesis(score=float("-inf"), y_sequence=[], text=""))
            else:
                out.append(Hypothesis(score=nbest.combined(weight, bonus)[i], y_sequence=torch.tensor(nbest.tokens[i]),
                                      text=nbest.texts[i]))  # fmt: skip
        return out

    def _transcribe_output_processing(self, outputs, trcfg):
        if self.decoder_type == "rnnt":
            return super()._transcribe_output_processing(outputs, trcfg)
        return self.two_pass_hypotheses(outputs.pop("encoded"), outputs.pop("encoded_len"))

    # ---- training -----------------------------------------------------------------------------------------
    def _losses(self, encoded, encoded_len, transcript, transcript_len):
        decoder, target_length, _ = self.decoder(targets=transcript, target_length=transcript_len)
        joint = self.joint(encoder_outputs=encoded, decoder_outputs=decoder)
        rnnt = self.loss(log_probs=joint, targets=transcript, input_lengths=encoded_len, target_lengths=target_length)
        attn = self.attention.loss(encoded, encoded_len, transcript, transcript_len)
        return rnnt, attn

    def training_step(self, batch, batch_nb):
        signal, signal_len, transcript, transcript_len = batch
        encoded, encoded_len = self.forward(input_signal=signal, input_signal_length=signal_len)
        rnnt, attn = self._losses(encoded, encoded_len, transcript, transcript_len)
        loss = self.add_auxiliary_losses(rnnt + self.attn_loss_weight * attn)
        logs = {"train_loss": loss, "train_rnnt_loss": rnnt, "train_attn_loss": attn,
                "learning_rate": self._optimizer.param_groups[0]["lr"],
                "global_step": torch.tensor(self.trainer.global_step, dtype=torch.float32)}  # fmt: skip
        if (self.trainer.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.wer.update(predictions=encoded, predictions_lengths=encoded_len, targets=transcript,
                            targets_lengths=transcript_len)  # fmt: skip
            _, scores, words = self.wer.compute()
            self.wer.reset()
            logs["training_batch_wer"] = scores.float() / words
        self.log_dict(logs)
        if self._optim_normalize_joint_txu:
            self._optim_normalize_txu = [encoded_len.max(), transcript_len.max()]
        return {"loss": loss}

    def validation_pass(self, batch, batch_idx, dataloader_idx=0):
        """First-pass (greedy) WER and both losses; `val_loss` is the training objective."""
        signal, signal_len, transcript, transcript_len = batch
        encoded, encoded_len = self.forward(input_signal=signal, input_signal_length=signal_len)
        rnnt, attn = self._losses(encoded, encoded_len, transcript, transcript_len)
        self.wer.update(predictions=encoded, predictions_lengths=encoded_len, targets=transcript,
                        targets_lengths=transcript_len)  # fmt: skip
        wer, num, denom = self.wer.compute()
        self.wer.reset()
        self.log("global_step", torch.tensor(self.trainer.global_step, dtype=torch.float32))
        return {"val_loss": rnnt + self.attn_loss_weight * attn, "val_rnnt_loss": rnnt, "val_attn_loss": attn,
                "val_wer_num": num, "val_wer_denom": denom, "val_wer": wer}  # fmt: skip

    def _epoch_end(self, outputs, prefix: str) -> dict:
        mean = {k: torch.stack([x[f"{prefix}_{k}"] for x in outputs]).mean() for k in ("loss", "rnnt_loss", "attn_loss")}
        num = torch.stack([x[f"{prefix}_wer_num"] for x in outputs]).sum()
        denom = torch.stack([x[f"{prefix}_wer_denom"] for x in outputs]).sum()
        logs = {f"{prefix}_{k}": v for k, v in mean.items()} | {f"{prefix}_wer": num.float() / denom}
        return {f"{prefix}_loss": mean["loss"], "log": logs}

    def multi_validation_epoch_end(self, outputs, dataloader_idx: int = 0):
        return self._epoch_end(outputs, "val")

    def multi_test_epoch_end(self, outputs, dataloader_idx: int = 0):
        return self._epoch_end(outputs, "test")
