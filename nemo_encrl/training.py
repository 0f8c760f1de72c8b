"""Training a plain NeMo CTC-BPE model from a NeMo-style config: Lightning + exp_manager, nothing else.

Used for the demo teacher (and later for students trained from scratch). A killed run resumes from
exp_manager's last checkpoint when started again with the same config.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from nemo_encrl.data.manifest import validate_manifest
from nemo_encrl.joblog import PROGRESS_ENV

log = logging.getLogger(__name__)


def prepare_tokenizer(cfg: DictConfig) -> None:
    """Train the BPE tokenizer on the train text if cfg.model.tokenizer.dir has none (or copy that of
    `tokenizer_from: <.nemo>`, when set); check CTC fit."""
    from nemo.collections.common.tokenizers import SentencePieceTokenizer

    from nemo_encrl.tokenizer import tokens_per_frame, train_bpe_tokenizer

    tok_dir = Path(cfg.model.tokenizer.dir)
    spec = cfg.get("tokenizer_training")
    if cfg.get("tokenizer_from"):
        copy_tokenizer(cfg)
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
    """Every entry well-formed and its audio present, before anything loads (rates: `check_sample_rate`)."""
    validate_manifest(cfg.model.train_ds.manifest_filepath)
    validate_manifest(cfg.model.validation_ds.manifest_filepath)


_RATES_CHECKED: set[tuple] = set()  # (manifest, its mtime, rate): the depths of one finetune share one check


def check_sample_rate(cfg: DictConfig, sample_rate: int | None) -> None:
    """Training audio at another rate than the model's is refused, as `evaluate` refuses it: lhotse would
    resample it silently. Run once the model exists (a student's rate is its teacher's), before any step;
    each manifest's headers are read once per process and rate."""
    if not sample_rate:
        return
    for section in ("train_ds", "validation_ds"):
        manifest = cfg.model.get(section, {}).get("manifest_filepath")
        if not (isinstance(manifest, str) and Path(manifest).is_file()):
            continue
        key = (str(Path(manifest).resolve()), Path(manifest).stat().st_mtime_ns, int(sample_rate))
        if key not in _RATES_CHECKED:
            validate_manifest(manifest, sample_rate=int(sample_rate))
            _RATES_CHECKED.add(key)


# NeMo schedulers that do not depend on the total number of steps (they only stop at max_steps)
STEP_FREE_SCHEDULERS = ("NoamAnnealing", "InverseSquareRootAnnealing", "SquareRootAnnealing", "NoamHoldAnnealing")
UNBOUNDED_STEPS = 10_000_000


def bound_steps(cfg: DictConfig) -> None:
    """lhotse loaders have no length, so NeMo cannot derive max_steps from max_epochs/max_time for the
    LR scheduler. A run bounded by epochs or time with a step-free schedule gets a max_steps it never
    reaches; anything else must say how many steps it trains."""
    if not cfg.model.train_ds.get("use_lhotse") or (cfg.trainer.get("max_steps") or -1) > 0:
        return
    sched = cfg.model.get("optim", {}).get("sched", {}).get("name")
    bounded = cfg.trainer.get("max_time") or (cfg.trainer.get("max_epochs") or -1) > 0
    if not bounded or sched not in STEP_FREE_SCHEDULERS:
        raise ValueError(
            "model.train_ds.use_lhotse=true has no epoch length: set trainer.max_steps"
            + ("" if bounded else " (or bound the run with trainer.max_epochs / +trainer.max_time)")
            + ("" if sched in STEP_FREE_SCHEDULERS else f"; the {sched} schedule needs the total step count")
        )
    with open_dict(cfg):
        cfg.trainer.max_steps = UNBOUNDED_STEPS
    log.info("lhotse + %s: run bounded by max_epochs/max_time, trainer.max_steps set to %d", sched, UNBOUNDED_STEPS)


def clamp_validation(cfg: DictConfig) -> None:
    """A run shorter than `trainer.val_check_interval` steps still validates and checkpoints, at its last step."""
    every, steps = cfg.trainer.get("val_check_interval"), cfg.trainer.get("max_steps") or -1
    if isinstance(every, int) and not isinstance(every, bool) and 0 < steps < every:
        with open_dict(cfg):
            cfg.trainer.val_check_interval = int(steps)


def check_output(path: str | Path) -> Path:
    """The .nemo a run will write: its folder must be creatable now, not after hours of training."""
    out = Path(path)
    if out.is_dir():
        raise IsADirectoryError(f"output_nemo={out} is a folder: give the path of the .nemo file to write")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"output_nemo={out}: cannot create its folder ({e.strerror or e})") from e
    if not os.access(out.parent, os.W_OK):
        raise PermissionError(f"output_nemo={out}: its folder {out.parent} is not writable")
    return out


def run_training(cfg: DictConfig, build_model) -> Path:
    """Lightning trainer + exp_manager (resume) + `build_model(cfg.model, trainer)` + fit -> .nemo."""
    import lightning.pytorch as pl
    from nemo.utils.exp_manager import exp_manager

    from nemo_encrl.device import enable_tf32

    check_output(cfg.output_nemo)
    if cfg.get("init_streaming_from") and not Path(cfg.init_streaming_from).is_file():  # before any folder is made
        raise FileNotFoundError(f"init_streaming_from={cfg.init_streaming_from}: no such file (the two-pass recipe's "
                                "comes from `nemo-encrl teacher --config streaming_ctc_finetune`)")  # fmt: skip
    enable_tf32()
    bound_steps(cfg)
    clamp_validation(cfg)
    if cfg.get("seed") is not None:
        pl.seed_everything(int(cfg.seed), workers=True)
    callbacks = []
    if cfg.get("learning_curve"):  # dev metrics + wall-clock after every validation, as JSON
        from nemo_encrl.callbacks import LearningCurve

        callbacks.append(LearningCurve(cfg.learning_curve))
    if cfg.trainer.get("enable_progress_bar", True):  # the whole run's steps, with a total and an ETA
        from nemo_encrl.callbacks import StepProgressBar

        callbacks.append(StepProgressBar())
    if progress_file := os.environ.get(PROGRESS_ENV):  # a parent process shows this run's steps (bench workers)
        from nemo_encrl.callbacks import ProgressFile

        callbacks.append(ProgressFile(progress_file))
    if cfg.get("regularization_warmup_steps"):  # SpecAugment and dropout only after the CTC plateau
        from nemo_encrl.callbacks import RegularizationWarmup

        callbacks.append(RegularizationWarmup(cfg.regularization_warmup_steps))
    if cfg.get("encoder_freeze_steps"):  # new heads first learn on the pretrained encoder as it is
        from nemo_encrl.callbacks import EncoderFreeze

        callbacks.append(EncoderFreeze(cfg.encoder_freeze_steps))
    trainer = pl.Trainer(**OmegaConf.to_container(cfg.trainer, resolve=True), callbacks=callbacks)
    by_step = trainer.check_val_every_n_epoch is None
    if by_step:  # NeMo's exp_manager compares it with max_epochs (a TypeError on None): hide it for that call
        trainer.check_val_every_n_epoch = 1
    try:
        exp_dir = exp_manager(trainer, cfg.get("exp_manager"))
    finally:
        if by_step:
            trainer.check_val_every_n_epoch = None
    model = build_model(cfg.model, trainer)
    check_sample_rate(cfg, model.cfg.get("sample_rate"))
    # NeMo's init_from_nemo_model / init_from_pretrained_model / init_from_ptl_ckpt, e.g. to continue
    # from a shipped .nemo when the exp_manager checkpoints of an earlier run are gone
    model.maybe_init_from_pretrained_checkpoint(cfg)
    if cfg.get("init_streaming_from"):  # a full-context model's encoder mapped onto this streaming one
        from nemo_encrl.streaming_init import init_streaming_from

        modules = init_streaming_from(model, cfg.init_streaming_from)
        log.info("init_streaming_from=%s: %s set from it", cfg.init_streaming_from, ", ".join(modules))
    log.info("%s has %.2fM trainable parameters; logs and checkpoints in %s", type(model).__name__,
             sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6, exp_dir)  # fmt: skip
    trainer.fit(model)
    out = Path(cfg.output_nemo)
    if trainer.is_global_zero:
        out.parent.mkdir(parents=True, exist_ok=True)
        model.save_to(str(out))
        log.info("saved %s", out)
    return out


def fit_ctc_bpe(cfg: DictConfig) -> Path:
    """Tokenizer -> EncDecCTCModelBPE -> trainer.fit (resumable) -> .nemo at cfg.output_nemo."""
    from nemo.collections.asr.models import EncDecCTCModelBPE

    check_output(cfg.output_nemo)  # before the tokenizer is trained, not only before the fit
    check_data(cfg)
    prepare_tokenizer(cfg)
    return run_training(cfg, lambda model_cfg, trainer: EncDecCTCModelBPE(cfg=model_cfg, trainer=trainer))


def fit_encrl(cfg: DictConfig) -> Path:
    """EncRL stage 1: student aligned with the frozen teacher (resumable) -> stage-1 .nemo."""
    from nemo_encrl.models import EncRLModel

    check_data(cfg)
    return run_training(cfg, lambda model_cfg, trainer: EncRLModel(cfg=model_cfg, trainer=trainer))


def copy_tokenizer(cfg: DictConfig) -> None:
    """`tokenizer_from: <.nemo>`: that model's tokenizer into model.tokenizer.dir unless one is there."""
    from nemo_encrl.teacher import load_asr_model
    from nemo_encrl.tokenizer import export_tokenizer

    tok_dir = Path(cfg.model.tokenizer.dir)
    if (tok_dir / "tokenizer.model").exists():
        return
    if not cfg.get("tokenizer_from"):
        raise FileNotFoundError(f"model.tokenizer.dir={tok_dir} has no tokenizer.model and tokenizer_from is not set")
    export_tokenizer(load_asr_model(path=cfg.tokenizer_from, what="tokenizer_from model"), tok_dir)
    log.info("tokenizer of %s copied to %s", cfg.tokenizer_from, tok_dir)


def check_two_pass_inputs(cfg: DictConfig) -> None:
    """Everything a two-pass run (or distillation stage) can check before its model exists; its tokenizer."""
    from nemo_encrl.models.two_pass import check_two_pass_config

    check_output(cfg.output_nemo)
    check_two_pass_config(cfg.model)
    check_data(cfg)
    copy_tokenizer(cfg)


def fit_two_pass(cfg: DictConfig) -> Path:
    """Two-pass model (RNN-T + attention rescorer; encoder optionally from a CTC model) -> .nemo."""
    from nemo_encrl.models.two_pass import TwoPassModel

    check_two_pass_inputs(cfg)
    return run_training(cfg, lambda model_cfg, trainer: TwoPassModel(cfg=model_cfg, trainer=trainer))


STUDENT_ARCHITECTURE = ("preprocessor", "encoder", "decoder", "joint", "model_defaults")


def fit_two_pass_kd(cfg: DictConfig) -> Path:
    """One stage of the two-pass distillation (model.kd.stage) -> the student as a plain TwoPassModel .nemo.

    `model.kd.init_from` (the previous stage's .nemo) gives the student its architecture and weights; for the
    rescorer stage with `model.kd.nbest`, the student's first-pass N-best of the train set is decoded first
    (once: a second start only decodes what is missing)."""
    from nemo_encrl.models.two_pass import TwoPassModel
    from nemo_encrl.models.two_pass_kd import STAGES, TwoPassKDError, TwoPassKDModel
    from nemo_encrl.teacher import load_asr_model

    kd = cfg.model.get("kd") or {}
    if kd.get("stage") not in STAGES:
        raise TwoPassKDError(f"model.kd.stage={kd.get('stage')!r}: choose one of {STAGES}")
    check_two_pass_inputs(cfg)
    init = None
    if kd.get("init_from"):
        init = load_asr_model(path=kd.init_from, what="model.kd.init_from", kind=TwoPassModel)
        with open_dict(cfg):
            for key in STUDENT_ARCHITECTURE:
                cfg.model[key] = init.cfg[key]
            cfg.model.aux_attn.decoder = init.cfg.aux_attn.decoder
        if kd.stage == "rescorer" and kd.get("nbest"):
            from nemo_encrl.data.nbest_store import build_nbest_store

            build_nbest_store(init, cfg.model.train_ds, kd.nbest)
    elif kd.stage != "rnnt":
        raise TwoPassKDError(f"model.kd.stage={kd.stage} needs model.kd.init_from: the previous stage's student .nemo")

    def build(model_cfg, trainer):
        model = TwoPassKDModel(cfg=model_cfg, trainer=trainer)
        if init is not None:
            result = model.load_state_dict(init.state_dict(), strict=False)
            missing = [k for k in result.missing_keys if not k.startswith(("teacher.", "kd_projection."))]
            if missing or result.unexpected_keys:
                raise TwoPassKDError(f"model.kd.init_from={kd.init_from}: weights do not fit the student "
                                     f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})")  # fmt: skip
        return model

    return run_training(cfg, build)

