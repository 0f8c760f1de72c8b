"""Plain NeMo CTC students: from a stage-1 EncRL model (weights, cut to any depth) or from scratch.

The result is an `EncDecCTCModelBPE` with the teacher's preprocessor and tokenizer and the student's
encoder; nothing of nemo_encrl stays in its config, so stock NeMo restores, transcribes and exports it.
"""

from __future__ import annotations

import copy
import tarfile
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from nemo.utils import logging

from nemo_encrl.tokenizer import export_tokenizer, process_tokenizer_dir

# config sections of a plain CTC-BPE model that the student keeps from its source
_DATA_SECTIONS = ("train_ds", "validation_ds", "test_ds")


class StudentError(ValueError):
    pass


def load_stage1(path: str | Path):
    """An EncRLModel from a stage-1 .nemo or a Lightning/exp_manager .ckpt, with a clear error otherwise."""
    from nemo_encrl.models import EncRLModel

    path = Path(path)
    if not path.is_file():
        raise StudentError(f"stage-1 file {path} does not exist")
    if path.suffix == ".ckpt":
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        target = str(ckpt.get("hyper_parameters", {}).get("cfg", {}).get("target", ""))
        if "EncRLModel" not in target and "teacher" not in ckpt.get("hyper_parameters", {}).get("cfg", {}):
            raise StudentError(f"{path} is not an EncRL stage-1 checkpoint (its model is {target or 'unknown'})")
        return EncRLModel.load_from_checkpoint(str(path), map_location="cpu")
    if not tarfile.is_tarfile(path):
        raise StudentError(f"stage-1 file {path} is neither a .nemo archive nor a .ckpt checkpoint")
    try:
        with tarfile.open(path) as tar:
            config = next((m for m in tar.getmembers() if m.name.endswith("model_config.yaml")), None)
            if config is None:
                raise StudentError(f"{path} has no model_config.yaml: not a .nemo file")
            target = OmegaConf.create(tar.extractfile(config).read().decode()).get("target", "")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise StudentError(f"stage-1 file {path} is damaged or truncated ({type(e).__name__}: {e})") from e
    if not str(target).endswith("EncRLModel"):
        raise StudentError(f"{path} is not an EncRL stage-1 model: it holds a {target or 'model without target'}")
    try:
        return EncRLModel.restore_from(str(path), map_location="cpu")
    except Exception as e:  # NeMo raises many kinds (a truncated archive among them); keep the cause, name the file
        raise StudentError(f"could not restore stage-1 file {path} ({type(e).__name__}: {e}): damaged or truncated?") from e


def _tokenizer_of(model, directory: str | Path | None) -> Path:
    try:
        return export_tokenizer(model, directory or process_tokenizer_dir("encrl_student_tokenizer_"))
    except FileNotFoundError as e:
        raise StudentError(str(e)) from e


def _plain_ctc_config(source_cfg: DictConfig, encoder: DictConfig, tokenizer_dir: Path, train_cfg: DictConfig | None):
    """An EncDecCTCModelBPE config: source's preprocessor, the given encoder, a head over the tokenizer."""
    cfg = OmegaConf.create({
        "sample_rate": source_cfg.sample_rate,
        "log_prediction": True,
        "ctc_reduction": "mean_batch",
        "preprocessor": copy.deepcopy(source_cfg.preprocessor),
        "spec_augment": None,
        "encoder": copy.deepcopy(encoder),
        "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": None,
                    "num_classes": -1, "vocabulary": []},
        "tokenizer": {"dir": str(tokenizer_dir), "type": "bpe"},
        # stock transcribe() reads validation_ds.use_start_end_token: keep the section in every .nemo
        "validation_ds": {"manifest_filepath": None, "sample_rate": source_cfg.sample_rate, "batch_size": 32,
                          "shuffle": False, "use_start_end_token": False},
    })  # fmt: skip
    if train_cfg is not None:  # data, optimiser and augmentation of the finetuning config
        with open_dict(cfg):
            for key in (*_DATA_SECTIONS, "optim", "spec_augment", "log_prediction", "ctc_reduction", "decoding",
                        "teacher", "distillation"):  # the last two: stage 2 with a KL term (training only)
                if train_cfg.get(key) is not None:
                    cfg[key] = copy.deepcopy(train_cfg[key])
            for section in _DATA_SECTIONS:
                if section in cfg and cfg[section] is not None:
                    cfg[section].sample_rate = source_cfg.sample_rate
    return cfg


def cut_to_depth(source, n_layers: int | None = None, decoder_init: str = "stage1", train_cfg: DictConfig | None = None,
                 trainer=None, tokenizer_dir: str | Path | None = None, what: str = "source model",
                 encoder_updates: dict | None = None, model_class=None):  # fmt: skip
    """A plain EncDecCTCModelBPE (or `model_class`, a subclass for training) keeping the first `n_layers`
    Conformer layers of any CTC-BPE `source` (a stage-1 EncRL model, or a teacher: whole-layer pruning),
    its preprocessor and tokenizer.

    `decoder_init`: "stage1" keeps the source's CTC head, "fresh" starts it from random weights.
    `encoder_updates`: encoder settings that carry no weights (dropout) changed for the finetuning.
    """
    from nemo.collections.asr.models import EncDecCTCModelBPE

    depth = len(source.encoder.layers)
    n_layers = depth if n_layers is None else int(n_layers)
    if not 1 <= n_layers <= depth:
        raise StudentError(f"depth {n_layers} is not possible: the {what} has {depth} layers (1..{depth})")
    if decoder_init not in ("stage1", "fresh"):
        raise StudentError(f"decoder_init={decoder_init!r}: choose stage1 or fresh")
    tok_dir = _tokenizer_of(source, tokenizer_dir)
    encoder_cfg = copy.deepcopy(source.cfg.encoder)
    encoder_cfg.n_layers = n_layers
    with open_dict(encoder_cfg):
        encoder_cfg.update(encoder_updates or {})
    student = (model_class or EncDecCTCModelBPE)(_plain_ctc_config(source.cfg, encoder_cfg, tok_dir, train_cfg), trainer=trainer)

    kept = {k: v for k, v in source.encoder.state_dict().items()
            if not k.startswith("layers.") or int(k.split(".")[1]) < n_layers}  # fmt: skip
    missing, unexpected = student.encoder.load_state_dict(kept, strict=False)
    if missing or unexpected:
        raise StudentError(f"encoder weights do not fit the cut student: missing {missing}, unexpected {unexpected}")
    if decoder_init == "stage1":
        student.decoder.load_state_dict(source.decoder.state_dict())
    logging.info(f"student: {n_layers}/{depth} layers of the {what}, decoder {decoder_init}, "
                 f"{sum(p.numel() for p in student.parameters()) / 1e6:.2f}M parameters")  # fmt: skip
    return student


def student_from_stage1(stage1, n_layers: int | None = None, decoder_init: str = "stage1",
                        train_cfg: DictConfig | None = None, trainer=None, tokenizer_dir: str | Path | None = None,
                        encoder_updates: dict | None = None, model_class=None):  # fmt: skip
    """The stage-1 student (model or file) as a plain EncDecCTCModelBPE, cut to its first `n_layers`."""
    if isinstance(stage1, (str, Path)):
        stage1 = load_stage1(stage1)
    return cut_to_depth(stage1, n_layers, decoder_init, train_cfg, trainer, tokenizer_dir, what="stage-1 student",
                        encoder_updates=encoder_updates, model_class=model_class)


def student_from_scratch(teacher, encoder: DictConfig, train_cfg: DictConfig | None = None, trainer=None,
                         tokenizer_dir: str | Path | None = None, model_class=None):  # fmt: skip
    """The same kind of student with random weights: the teacher's preprocessor and tokenizer only."""
    from nemo.collections.asr.models import EncDecCTCModelBPE

    from nemo_encrl.teacher import load_ctc_model

    if isinstance(teacher, (str, Path)):
        teacher = load_ctc_model(path=teacher)
    tok_dir = _tokenizer_of(teacher, tokenizer_dir)
    encoder = copy.deepcopy(encoder)
    with open_dict(encoder):
        encoder.feat_in = teacher.cfg.preprocessor.features
    return (model_class or EncDecCTCModelBPE)(_plain_ctc_config(teacher.cfg, encoder, tok_dir, train_cfg), trainer=trainer)
