"""Training a plain NeMo CTC-BPE model from a NeMo-style config: Lightning + exp_manager, nothing else.

Used for the demo teacher (and later for students trained from scratch). A killed run resumes from
exp_manager's last checkpoint when started again with the same config.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from nemo_encrl.data.manifest import validate_manifest

log = logging.getLogger(__name__)


def prepare_tokenizer(cfg: DictConfig) -> None:
    """Train the BPE tokenizer on the train text if cfg.model.tokenizer.dir has none; check CTC fit."""
    from nemo.collections.common.tokenizers import SentencePieceTokenizer

    from nemo_encrl.tokenizer import tokens_per_frame, train_bpe_tokenizer

    tok_dir = Path(cfg.model.tokenizer.dir)
    spec = cfg.get("tokenizer_training")
    if not (tok_dir / "tokenizer.model").exists():
        if spec is None:
            raise FileNotFoundError(
                f"model.tokenizer.dir={tok_dir} has no tokenizer.model and the config has no tokenizer_training section"
            )
        train_bpe_tokenizer([cfg.model.train_ds.manifest_filepath], tok_dir, spec.vocab_size, spec.type)
    if spec is not None and spec.get("max_tokens_per_frame"):
        stats = tokens_per_frame(
            cfg.model.train_ds.manifest_filepath,
            SentencePieceTokenizer(str(tok_dir / "tokenizer.model")),
            cfg.model.preprocessor.window_stride,
            cfg.model.encoder.subsampling_factor,
        )
        log.info("tokens per CTC frame on the train split: %s", stats)
        if stats["mean"] > spec.max_tokens_per_frame:
            raise ValueError(
                f"{stats['mean']:.2f} tokens per encoder frame on average (> tokenizer_training.max_tokens_per_frame="
                f"{spec.max_tokens_per_frame}): CTC will struggle. Use a larger vocab_size or a smaller "
                "model.encoder.subsampling_factor"
            )


def check_data(cfg: DictConfig) -> None:
    sr = cfg.model.sample_rate
    validate_manifest(cfg.model.train_ds.manifest_filepath, sample_rate=sr)
    validate_manifest(cfg.model.validation_ds.manifest_filepath, sample_rate=sr)


def fit_ctc_bpe(cfg: DictConfig) -> Path:
    """Tokenizer -> EncDecCTCModelBPE -> trainer.fit (resumable) -> .nemo at cfg.output_nemo."""
    import lightning.pytorch as pl
    from nemo.collections.asr.models import EncDecCTCModelBPE
    from nemo.utils.exp_manager import exp_manager

    check_data(cfg)
    prepare_tokenizer(cfg)
    trainer = pl.Trainer(**OmegaConf.to_container(cfg.trainer, resolve=True))
    exp_dir = exp_manager(trainer, cfg.get("exp_manager"))
    model = EncDecCTCModelBPE(cfg=cfg.model, trainer=trainer)
    log.info("model has %.2fM parameters; logs and checkpoints in %s", model.num_weights / 1e6, exp_dir)
    trainer.fit(model)
    out = Path(cfg.output_nemo)
    out.parent.mkdir(parents=True, exist_ok=True)
    if trainer.is_global_zero:
        with open_dict(model.cfg):
            model.cfg.train_ds.manifest_filepath = cfg.model.train_ds.manifest_filepath
        model.save_to(str(out))
        log.info("saved %s", out)
    return out
