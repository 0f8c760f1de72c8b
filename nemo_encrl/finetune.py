"""EncRL stage 2: several plain NeMo CTC students out of one stage-1 run, each finetuned with CTC.

`init.from: stage1` cuts the stage-1 student to every depth in `init.depths` (its first k layers) and
finetunes each; `init.from: scratch` trains the same architecture from random weights with the
teacher's tokenizer and preprocessor: the baseline, through the very same code path. The pruning
baselines go the same way: `init.from: teacher` keeps the teacher's first k layers (whole-layer
pruning), and `init.prune_l1` (a fraction of each attention/feed-forward weight) or
`init.prune_to_parameters` (all weights together, to a parameter count) add torch's L1-unstructured pruning.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from nemo.utils import logging

from nemo_encrl.pruning import MakePruningPermanent, l1_prune, l1_prune_to_size
from nemo_encrl.student import StudentError, cut_to_depth, load_stage1, student_from_scratch, student_from_stage1
from nemo_encrl.teacher import load_ctc_model
from nemo_encrl.training import check_data, run_training


SPEC_AUGMENT = "nemo.collections.asr.modules.SpectrogramAugmentation"


def regularization(cfg: DictConfig) -> dict:
    """Switch on the `regularization:` section: SpecAugment into `model.spec_augment`, its start step into
    `regularization_warmup_steps` (read by run_training); returns the encoder's dropout settings."""
    reg = cfg.get("regularization")
    if reg is None or reg.get("after_steps") is None:
        return {}
    after = int(reg.after_steps)
    if after < 0:
        raise StudentError(f"regularization.after_steps={after}: use null (off), 0 (from the start) or a step count")
    with open_dict(cfg):
        cfg.model.spec_augment = OmegaConf.create({"_target_": SPEC_AUGMENT, **OmegaConf.to_container(reg.spec_augment)})
        cfg.regularization_warmup_steps = after
    p = float(reg.dropout)
    return {"dropout": p, "dropout_pre_encoder": p, "dropout_att": p}


def distillation(cfg: DictConfig):
    """With `distillation.weight` > 0: the teacher and KL settings into the model config; returns the model
    class that trains with them (None: plain CTC)."""
    dist = cfg.get("distillation")
    if dist is None or float(dist.get("weight", 0)) == 0:
        return None
    from nemo_encrl.models.ctc_teacher_kl import CTCTeacherKLModel

    teacher = dist.get("teacher") or (cfg.init.get("teacher") if cfg.init.get("from") != "stage1" else None)
    if not teacher:  # a stage-1 student learns from its own stage 1's teacher: say which one
        raise StudentError("distillation.weight > 0 needs distillation.teacher: the teacher .nemo (for init.from=stage1, "
                           "the teacher its stage 1 was aligned with)")
    if cfg.init.get("prune_to_parameters"):
        raise StudentError("distillation with init.prune_to_parameters is not supported: the parameter count would "
                           "include the frozen teacher")
    with open_dict(cfg):
        cfg.model.teacher = OmegaConf.create({"path": str(teacher), "cache": dist.get("cache"), "dtype": "float32"})
        cfg.model.distillation = OmegaConf.create({"weight": float(dist.weight), "temperature": float(dist.temperature)})
    return CTCTeacherKLModel


def _take_encoder_config(cfg: DictConfig, source) -> None:
    """A student cut from `source` has its encoder: so does the config, whose schedule reads
    model.encoder.d_model (NeMo's Noam peak depends on it), whatever model.encoder said before."""
    with open_dict(cfg):
        cfg.model.encoder = copy.deepcopy(source.cfg.encoder)


def _run_config(cfg: DictConfig, depth: int) -> DictConfig:
    """The per-depth run: its own exp_manager name (so each resumes on its own) and output file."""
    run = copy.deepcopy(cfg)
    OmegaConf.resolve(run)  # sections are copied into a fresh model config, away from their interpolation roots
    tag = f"{cfg.init['from']}_L{depth}"
    with open_dict(run):
        run.exp_manager.name = f"{cfg.name}_{tag}"
        run.output_nemo = str(Path(cfg.output_dir) / f"student_{tag}.nemo")
        if cfg.get("learning_curve") and len(cfg.init.depths) > 1:  # one curve per depth, not one overwritten
            curve = Path(cfg.learning_curve)
            run.learning_curve = str(curve.with_name(f"{curve.stem}_L{depth}{curve.suffix}"))
    return run


def finetune_students(cfg: DictConfig) -> dict[int, dict]:
    """Train one student per depth; returns {depth: {"nemo": path, "train_seconds": s}}, also in summary.json."""
    cfg = copy.deepcopy(cfg)
    init = cfg.init
    dropout = regularization(cfg)
    model_class = distillation(cfg)
    source = init.get("from", "stage1")
    if source not in ("stage1", "scratch", "teacher"):
        raise StudentError(f"init.from={source!r}: choose stage1, scratch or teacher")
    depths = [int(d) for d in init.depths]
    if not depths:
        raise StudentError("init.depths is empty: list the student depths to train, e.g. [6, 4, 2]")
    check_data(cfg)
    if source == "stage1":
        if not init.get("stage1"):
            raise StudentError("init.stage1 is not set: the stage-1 EncRL .nemo or .ckpt to start from")
        stage1 = load_stage1(init.stage1)
        depth = len(stage1.encoder.layers)
        too_deep = [d for d in depths if not 1 <= d <= depth]
        if too_deep:
            raise StudentError(f"init.depths {too_deep} not possible: the stage-1 student has {depth} layers")
        _take_encoder_config(cfg, stage1)
    elif source == "teacher":
        if not init.get("teacher"):
            raise StudentError("init.from=teacher needs init.teacher: the model whose layers are kept")
        teacher = load_ctc_model(path=init.teacher)
        depth = len(teacher.encoder.layers)
        too_deep = [d for d in depths if not 1 <= d <= depth]
        if too_deep:
            raise StudentError(f"init.depths {too_deep} not possible: the teacher has {depth} layers")
        _take_encoder_config(cfg, teacher)
    else:
        if not init.get("teacher"):
            raise StudentError("init.teacher is not set: scratch students take the teacher's tokenizer and preprocessor")
        architecture = init.get("architecture", "config")
        if architecture == "stage1":  # the stage-1 student's architecture, with fresh weights
            if not init.get("stage1"):
                raise StudentError("init.architecture=stage1 needs init.stage1 (whose student architecture to train)")
            with open_dict(cfg):
                cfg.model.encoder = copy.deepcopy(load_stage1(init.stage1).cfg.encoder)
        elif architecture != "config":
            raise StudentError(f"init.architecture={architecture!r}: choose config (model.encoder) or stage1")
        if cfg.model.get("encoder") is None:
            raise StudentError("init.from=scratch needs model.encoder: the student architecture to train")

    results: dict[int, dict] = {}
    summary_path = Path(cfg.output_dir) / f"summary_{source}.json"
    for depth in depths:
        run = _run_config(cfg, depth)
        if source == "stage1":
            def build(model_cfg, trainer, depth=depth):
                return student_from_stage1(stage1, depth, init.get("decoder", "stage1"), model_cfg, trainer,
                                           encoder_updates=dropout, model_class=model_class)
        elif source == "teacher":
            def build(model_cfg, trainer, depth=depth):
                model = cut_to_depth(teacher, depth, init.get("decoder", "stage1"), model_cfg, trainer, what="teacher",
                                     encoder_updates=dropout, model_class=model_class)
                if init.get("prune_l1") and init.get("prune_to_parameters"):
                    raise StudentError("init.prune_l1 and init.prune_to_parameters: choose one pruning")
                if init.get("prune_l1"):  # masks stay on while finetuning; folded in before the .nemo is saved
                    l1_prune(model, float(init.prune_l1))
                    trainer.callbacks.append(MakePruningPermanent())
                if init.get("prune_to_parameters"):
                    sparsity = l1_prune_to_size(model, int(init.prune_to_parameters))
                    logging.info(f"global L1 pruning: {100 * sparsity:.1f}% of the Linear/conv weights zeroed")
                    trainer.callbacks.append(MakePruningPermanent())
                return model
        else:
            def build(model_cfg, trainer, depth=depth):
                encoder = copy.deepcopy(model_cfg.encoder)
                encoder.n_layers = depth
                encoder.update(dropout)
                return student_from_scratch(init.teacher, encoder, model_cfg, trainer, model_class=model_class)
        logging.info(f"stage 2 ({source}): depth {depth} -> {run.output_nemo}")
        start = time.time()
        path = run_training(run, build)
        results[depth] = {"nemo": str(path), "train_seconds": round(time.time() - start, 1)}
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        # runs of other depths into the same output_dir (e.g. one call per depth) stay listed
        earlier = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        earlier.update({str(d): r for d, r in results.items()})
        summary_path.write_text(json.dumps(dict(sorted(earlier.items(), key=lambda kv: int(kv[0]))), indent=1))
    return results
