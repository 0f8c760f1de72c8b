"""Shared tiny fixtures: a few-second synthetic corpus and a tiny CTC model trained on it for 3 steps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PYTHONUNBUFFERED", "1")


def run_readme_settings(settings: str, commands: str, values: dict[str, str], cwd: Path):
    """A README section's settings block replaced by `values` (one for each name it sets, in its order), then
    its commands block run by bash as written -> the finished process (its exit status checked)."""
    import re
    import subprocess
    import sys

    names = re.findall(r"^([A-Z0-9_]+)=", settings, re.M)
    assert names == list(values), f"the README's settings are {names}: give this test a value for each"
    script = "set -euo pipefail\n" + "".join(f'{k}="{v}"\n' for k, v in values.items()) + commands
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    from nemo_encrl.config import CONF_DIR
    from nemo_encrl.data.corpus import build_corpus, load_profile

    out = tmp_path_factory.mktemp("corpus") / "tiny"
    build_corpus(load_profile("tiny", CONF_DIR), out, num_workers=2)
    return out


# every tiny training: 3 steps of small batches, no worker processes, no TensorBoard
TINY_TRAINING = [
    "model.optim.sched.warmup_steps=2",
    "model.train_ds.batch_duration=40",
    "model.train_ds.num_workers=0",
    "model.validation_ds.num_workers=0",
    "trainer.max_steps=3",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "exp_manager.create_tensorboard_logger=false",
]

# the demo teacher recipe shrunk to seconds: same code path, tiny widths and steps
TINY_MODEL_OVERRIDES = [
    "tokenizer_training.vocab_size=40",
    "tokenizer_training.max_tokens_per_frame=0.6",
    "model.encoder.d_model=32",
    "model.encoder.n_layers=2",
    "model.encoder.n_heads=2",
    "model.encoder.conv_kernel_size=7",
    *TINY_TRAINING,
    "trainer.val_check_interval=3",
]


def tiny_run(corpus: Path, work: Path) -> list[str]:
    """Tiny-corpus data and a private exp_manager folder: the overrides every tiny run shares."""
    return [
        f"model.train_ds.manifest_filepath={corpus}/train_manifest.json",
        f"model.validation_ds.manifest_filepath={corpus}/dev_manifest.json",
        f"exp_manager.exp_dir={work}/runs",
    ]


def tiny_ctc_overrides(corpus: Path, work: Path) -> list[str]:
    return [
        *tiny_run(corpus, work),
        f"model.test_ds.manifest_filepath={corpus}/test_manifest.json",
        f"model.tokenizer.dir={work}/tokenizer",
        f"output_nemo={work}/tiny_ctc.nemo",
        f"learning_curve={work}/curve.json",
        *TINY_MODEL_OVERRIDES,
    ]


@pytest.fixture(scope="session")
def tiny_ctc_nemo(tiny_corpus, tmp_path_factory) -> Path:
    from nemo_encrl.config import load_config
    from nemo_encrl.training import fit_ctc_bpe

    work = tmp_path_factory.mktemp("tiny_ctc")
    cfg = load_config("teacher", "conformer_ctc_bpe_demo", tiny_ctc_overrides(tiny_corpus, work))
    return fit_ctc_bpe(cfg)


# the EncRL stage-1 recipe shrunk to seconds: tiny student, a few steps
TINY_STUDENT_OVERRIDES = [
    "model.encoder.d_model=24",
    "model.encoder.n_layers=2",
    "model.encoder.n_heads=2",
    "model.encoder.conv_kernel_size=7",
    *TINY_TRAINING,
]


def tiny_encrl_overrides(teacher: Path, corpus: Path, work: Path) -> list[str]:
    return [
        f"model.teacher.path={teacher}",
        f"model.tokenizer_dir={work}/tokenizer",
        *tiny_run(corpus, work),
        f"output_nemo={work}/stage1.nemo",
        *TINY_STUDENT_OVERRIDES,
    ]


@pytest.fixture(scope="session")
def tiny_encrl_nemo(tiny_ctc_nemo, tiny_corpus, tmp_path_factory) -> Path:
    from nemo_encrl.config import load_config
    from nemo_encrl.training import fit_encrl

    work = tmp_path_factory.mktemp("tiny_encrl")
    return fit_encrl(load_config("encrl", "encrl_clip_mse", tiny_encrl_overrides(tiny_ctc_nemo, tiny_corpus, work)))


def tiny_finetune_overrides(corpus: Path, work: Path, source: str, stage1: Path | None, teacher: Path | None) -> list[str]:
    return [
        f"init.from={source}",
        f"init.stage1={stage1}" if stage1 else "init.stage1=null",
        f"init.teacher={teacher}" if teacher else "init.teacher=null",
        "init.depths=[2,1]",
        f"output_dir={work}/students",
        *tiny_run(corpus, work),
        *TINY_STUDENT_OVERRIDES,
    ]


@pytest.fixture(scope="session")
def tiny_students(tiny_encrl_nemo, tiny_corpus, tmp_path_factory) -> dict:
    from nemo_encrl.config import load_config
    from nemo_encrl.finetune import finetune_students

    work = tmp_path_factory.mktemp("tiny_stage2")
    cfg = load_config("finetune", "ctc_finetune", tiny_finetune_overrides(tiny_corpus, work, "stage1", tiny_encrl_nemo, None))
    return finetune_students(cfg)


# the two-pass demo teacher recipe shrunk to seconds: encoder and tokenizer from the tiny CTC model
def tiny_two_pass_model(width: int, beam: int) -> list[str]:
    """A 2-layer two-pass model `width` wide (encoder, prediction and joint), its attention decoder 24 wide."""
    return [
        f"model.encoder.d_model={width}",
        "model.encoder.n_layers=2",
        "model.encoder.n_heads=2",
        "model.encoder.conv_kernel_size=7",
        "model.encoder.att_context_size=[16,3]",
        f"model.model_defaults.pred_hidden={width}",
        f"model.model_defaults.joint_hidden={width}",
        "model.aux_attn.decoder.hidden_size=24",  # narrower than a 32-wide encoder: the adapter is used
        "model.aux_attn.decoder.inner_size=48",
        "model.aux_attn.decoder.num_attention_heads=2",
        "model.aux_attn.decoder.num_layers=1",
        f"model.aux_attn.first_pass_decoding.beam.beam_size={beam}",
        *TINY_TRAINING,
        "trainer.val_check_interval=3",
    ]


TINY_TWO_PASS_OVERRIDES = tiny_two_pass_model(32, beam=4)


def tiny_two_pass_overrides(ctc: Path, corpus: Path, work: Path) -> list[str]:
    return [
        f"tokenizer_from={ctc}",
        f"init_streaming_from={ctc}",
        f"model.tokenizer.dir={work}/tokenizer",
        f"output_nemo={work}/two_pass.nemo",
        *tiny_run(corpus, work),
        *TINY_TWO_PASS_OVERRIDES,
    ]


@pytest.fixture(scope="session")
def tiny_two_pass_nemo(tiny_ctc_nemo, tiny_corpus, tmp_path_factory) -> Path:
    from nemo_encrl.config import load_config
    from nemo_encrl.training import fit_two_pass

    work = tmp_path_factory.mktemp("tiny_two_pass")
    return fit_two_pass(load_config("two_pass", "conformer_rnnt_attention_demo", tiny_two_pass_overrides(tiny_ctc_nemo, tiny_corpus, work)))


# the two-pass distillation stages shrunk to seconds: a d24 x 2 student of the tiny two-pass teacher
TINY_KD_OVERRIDES = tiny_two_pass_model(24, beam=3)


def tiny_kd_overrides(stage: str, teacher: Path, corpus: Path, work: Path, init: Path | None = None) -> list[str]:
    return [
        f"model.kd.teacher.path={teacher}",
        f"model.kd.init_from={init}" if init else "model.kd.init_from=null",
        f"model.tokenizer.dir={work}/tokenizer",
        f"model.kd.nbest={work}/nbest.jsonl" if stage == "rescorer" else "model.kd.nbest=null",
        f"output_nemo={work}/{stage}.nemo",
        *tiny_run(corpus, work / stage),
        *TINY_KD_OVERRIDES,
    ]
