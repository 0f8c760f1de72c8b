"""The first pass of a two-pass model as a plain NeMo `EncDecRNNTBPEModel`: the streaming model a device ships.

Stock NeMo restores, transcribes and exports it without this package: the attention decoder, the
plugin's class name and its loss name are left out, the tokenizer travels as ordinary artifacts.
"""

from __future__ import annotations

import copy
from pathlib import Path

from omegaconf import OmegaConf, open_dict

FIRST_PASS_MODULES = ("preprocessor.", "encoder.", "decoder.", "joint.")
KEPT_KEYS = ("sample_rate", "preprocessor", "spec_augment", "encoder", "decoder", "joint", "model_defaults", "decoding",
             "rnnt_reduction", "compute_eval_loss", "log_prediction", "use_cer", "optim")  # fmt: skip


def first_pass_model(model):
    """A new EncDecRNNTBPEModel with `model`'s preprocessor, encoder, RNN-T decoder and joint (same weights)."""
    from nemo.collections.asr.models import EncDecRNNTBPEModel

    from nemo_encrl.tokenizer import export_tokenizer, process_tokenizer_dir

    tokenizer_dir = export_tokenizer(model, process_tokenizer_dir("first_pass_tokenizer_"))
    cfg = OmegaConf.create({k: copy.deepcopy(model.cfg[k]) for k in KEPT_KEYS if model.cfg.get(k) is not None})
    with open_dict(cfg):
        cfg.tokenizer = {"dir": str(tokenizer_dir), "type": "bpe"}
        cfg.loss = {"loss_name": "default"}  # stock NeMo cannot resolve the plugin's loss name
        # stock transcribe() reads validation_ds.use_start_end_token: keep the section in every .nemo
        cfg.validation_ds = {"manifest_filepath": None, "sample_rate": model.cfg.sample_rate, "batch_size": 32,
                             "shuffle": False, "use_start_end_token": False}  # fmt: skip
    plain = EncDecRNNTBPEModel(cfg=cfg)
    weights = {k: v for k, v in model.state_dict().items() if k.startswith(FIRST_PASS_MODULES)}
    plain.load_state_dict(weights, strict=True)
    return plain.eval()


def export_first_pass(model, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    first_pass_model(model).save_to(str(out))
    return out
