"""EncRL stage 1 end to end on the tiny corpus with a tiny teacher: it trains, the teacher stays frozen,
the .nemo restores in a new process with identical outputs, and bad configs fail clearly."""

import subprocess
import sys

import lightning.pytorch as pl
import pytest
import torch
from omegaconf import open_dict

from nemo_encrl.config import load_config
from nemo_encrl.models import EncRLConfigError, EncRLModel

pytestmark = pytest.mark.slow


def _cfg(tiny_ctc_nemo, tiny_corpus, work, *extra):
    from conftest import tiny_encrl_overrides

    return load_config("encrl", "encrl_clip_mse", tiny_encrl_overrides(tiny_ctc_nemo, tiny_corpus, work) + list(extra))


def _teacher_state(model) -> dict:
    return {k: v.clone() for k, v in model.teacher.state_dict().items()}


class Recorder(pl.Callback):
    def __init__(self):
        self.losses, self.teacher_training = [], []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))
        self.teacher_training.append(module.teacher.training or any(m.training for m in module.teacher.modules()))


def test_training_lowers_loss_and_keeps_teacher_frozen(tiny_ctc_nemo, tiny_corpus, tmp_path):
    from nemo.collections.asr.models import ASRModel

    # NeMo's classic loader here: Lightning's overfit_batches needs a map-style dataset
    cfg = _cfg(tiny_ctc_nemo, tiny_corpus, tmp_path, "model.train_ds.use_lhotse=false", "model.train_ds.batch_size=8")
    model = EncRLModel(cfg.model)
    original = ASRModel.restore_from(str(tiny_ctc_nemo), map_location="cpu")
    for key, value in original.encoder.state_dict().items():  # the teacher inside is the loaded one
        assert torch.equal(model.teacher.encoder.state_dict()[key], value), key
    before = _teacher_state(model)
    recorder = Recorder()
    trainer = pl.Trainer(max_steps=25, overfit_batches=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, callbacks=[recorder], accelerator="cpu")  # fmt: skip
    model.set_trainer(trainer)
    trainer.fit(model)
    first, last = sum(recorder.losses[:3]) / 3, sum(recorder.losses[-3:]) / 3
    assert last < 0.8 * first, recorder.losses
    assert not any(recorder.teacher_training)
    after = model.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "teacher weights or BN statistics changed"
    assert all(not p.requires_grad for p in model.teacher.parameters())
    optimized = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert not optimized & {id(p) for p in model.teacher.parameters()}


def test_gradient_reaches_student_only(tiny_ctc_nemo, tiny_corpus, tmp_path):
    cfg = _cfg(tiny_ctc_nemo, tiny_corpus, tmp_path, "model.loss.clip.weight=1.0", "model.loss.kl.weight=1.0",
               "model.loss.hidden.weight=1.0", "model.loss.hidden.pairs=[[0,0],[1,1]]")  # fmt: skip
    model = EncRLModel(cfg.model)
    model.train()
    batch = next(iter(model._train_dl))
    _, terms, loss = model._step_losses(batch)
    assert set(terms) == {"clip", "mse_logprobs", "mse_encoder", "kl", "hidden"}
    assert all(torch.isfinite(v) for v in terms.values())
    loss.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.encoder.layers[0].feed_forward1.linear1.weight.grad.abs().sum() > 0
    assert model.decoder.decoder_layers[0].weight.grad.abs().sum() > 0
    assert model.encoder_proj.weight.grad.abs().sum() > 0 and model.clip_student_proj.weight.grad.abs().sum() > 0


def test_logged_metrics_include_losses_and_wer(tiny_ctc_nemo, tiny_corpus, tmp_path):
    cfg = _cfg(tiny_ctc_nemo, tiny_corpus, tmp_path, "model.loss.clip.weight=1.0")
    model = EncRLModel(cfg.model)
    trainer = pl.Trainer(max_steps=2, limit_val_batches=1, val_check_interval=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, accelerator="cpu", log_every_n_steps=1)  # fmt: skip
    model.set_trainer(trainer)
    trainer.fit(model)
    metrics = set(trainer.callback_metrics)
    assert {"train_clip", "train_mse_logprobs", "train_loss", "learning_rate", "training_batch_wer"} <= metrics
    assert {"val_loss", "val_wer", "val_clip", "val_mse_logprobs"} <= metrics


RESTORE = """
import sys, torch, soundfile as sf
from nemo_encrl.models import EncRLModel
m = EncRLModel.restore_from(sys.argv[1], map_location="cpu").eval()
audio, sr = sf.read(sys.argv[2], dtype="float32")
x = torch.tensor(audio)[None]
with torch.no_grad():
    out = m.distill_forward(x, torch.tensor([x.shape[1]]))
torch.save({k: out[k] for k in ("student_logp", "teacher_logp", "student_enc")}, sys.argv[3])
"""


def test_save_restore_in_new_process_same_outputs(tiny_encrl_nemo, tiny_corpus, tmp_path):
    import json

    import soundfile as sf

    wav = json.loads((tiny_corpus / "dev_manifest.json").read_text().splitlines()[0])["audio_filepath"]
    result = tmp_path / "out.pt"
    proc = subprocess.run([sys.executable, "-c", RESTORE, str(tiny_encrl_nemo), wav, str(result)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = torch.load(result)
    model = EncRLModel.restore_from(str(tiny_encrl_nemo), map_location="cpu").eval()
    audio, _ = sf.read(wav, dtype="float32")
    x = torch.tensor(audio)[None]
    with torch.no_grad():
        ours = model.distill_forward(x, torch.tensor([x.shape[1]]))
    for key, value in theirs.items():
        assert torch.allclose(ours[key], value, atol=1e-5), key
    # the student transcribes through stock NeMo machinery with the teacher's tokenizer
    assert isinstance(model.transcribe([wav], verbose=False)[0].text, str)
    assert model.tokenizer.vocab_size == 40


def test_resume_from_checkpoint(tiny_encrl_nemo, tiny_ctc_nemo, tiny_corpus, caplog):
    from nemo_encrl.training import fit_encrl

    work = tiny_encrl_nemo.parent
    fit_encrl(_cfg(tiny_ctc_nemo, tiny_corpus, work, "trainer.max_steps=5"))
    last = next(work.glob("runs/*/checkpoints/*last.ckpt"))
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 5
    assert "Restored all states from the checkpoint" in caplog.text
    # checkpoints leave out the frozen teacher: a digest of it instead, the teacher re-attached on load
    assert not any(k.startswith("teacher.") for k in ckpt["state_dict"]) and ckpt["nemo_encrl_teacher"]["digest"]


def test_checkpoint_reattaches_its_teacher_by_digest(tiny_encrl_nemo, tiny_ctc_nemo, tiny_corpus, tmp_path):
    from nemo_encrl.models.teacher_checkpoint import TeacherCheckpointError
    from nemo_encrl.student import load_stage1
    from nemo_encrl.teacher import load_ctc_model

    last = next(tiny_encrl_nemo.parent.glob("runs/*/checkpoints/*last.ckpt"))
    teacher = load_ctc_model(path=tiny_ctc_nemo)
    stage1 = load_stage1(last)  # built from the checkpoint's config, its teacher loaded from model.teacher.path
    for key, value in teacher.encoder.state_dict().items():
        assert torch.equal(stage1.teacher.encoder.state_dict()[key], value), key
    # another teacher at that path is refused by name, not silently used
    with torch.no_grad():
        teacher.encoder.layers[0].feed_forward1.linear1.weight.add_(0.01)
    other = tmp_path / "other_teacher.nemo"
    teacher.save_to(str(other))
    model = EncRLModel(cfg=_cfg(other, tiny_corpus, tmp_path).model)
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    with pytest.raises(TeacherCheckpointError, match=r"teacher .*other_teacher.nemo is not the teacher this checkpoint was trained with"):
        model.on_load_checkpoint(ckpt)


def test_missing_teacher_is_named(tiny_ctc_nemo, tiny_corpus, tmp_path):
    from nemo_encrl.teacher import TeacherError

    cfg = _cfg(tiny_ctc_nemo, tiny_corpus, tmp_path, f"model.teacher.path={tmp_path / 'nope.nemo'}")
    with pytest.raises(TeacherError, match="nope.nemo does not exist"):
        EncRLModel(cfg.model)


def test_char_teacher_is_refused(tiny_ctc_nemo, tiny_corpus, tmp_path, monkeypatch):
    from nemo.collections.asr.models import EncDecCTCModel

    import nemo_encrl.teacher as teacher_mod

    class CharCTC(EncDecCTCModel):
        def __init__(self):
            torch.nn.Module.__init__(self)

    monkeypatch.setattr(teacher_mod, "load_ctc_model", lambda **kw: CharCTC())
    with pytest.raises(EncRLConfigError, match="CharCTC: EncRL needs a BPE CTC teacher"):
        EncRLModel(_cfg(tiny_ctc_nemo, tiny_corpus, tmp_path).model)


def test_preprocessor_mismatch_is_named(tiny_ctc_nemo, tiny_corpus, tmp_path):
    cfg = _cfg(tiny_ctc_nemo, tiny_corpus, tmp_path, "+model.preprocessor.features=64")
    with pytest.raises(EncRLConfigError, match=r"model.preprocessor.features=64 differs from the teacher's 80"):
        EncRLModel(cfg.model)


def test_frame_rate_mismatch_errors_or_pools(tiny_ctc_nemo, tiny_corpus, tmp_path):
    cfg = _cfg(tiny_ctc_nemo, tiny_corpus, tmp_path, "model.encoder.subsampling_factor=8")
    with pytest.raises(EncRLConfigError, match="student subsampling_factor 8 differs from the teacher's 4"):
        EncRLModel(cfg.model)
    with open_dict(cfg):
        cfg.model.frame_rate_mismatch = "pool"
    model = EncRLModel(cfg.model)
    assert model.pool_teacher == 2
    out, terms, loss = model._step_losses(next(iter(model._train_dl)))
    assert out["student_enc"].shape[1] == out["teacher_enc"].shape[1]
    assert torch.isfinite(loss)


def test_bad_loss_config_is_named(tiny_ctc_nemo, tiny_corpus, tmp_path):
    cfg = _cfg(tiny_ctc_nemo, tiny_corpus, tmp_path, "+model.loss.cosine={weight: 1.0}")
    with pytest.raises(EncRLConfigError, match=r"unknown model.loss terms \['cosine'\]"):
        EncRLModel(cfg.model)
    cfg = _cfg(tiny_ctc_nemo, tiny_corpus, tmp_path, "model.loss.clip.weight=0", "model.loss.mse_logprobs.weight=0",
               "model.loss.mse_encoder.weight=0", "model.loss.hidden.weight=0")  # fmt: skip
    with pytest.raises(EncRLConfigError, match="every model.loss term has weight 0"):
        EncRLModel(cfg.model)
    cfg = _cfg(tiny_ctc_nemo, tiny_corpus, tmp_path, "model.loss.hidden.pairs=every")
    with pytest.raises(EncRLConfigError, match="hidden.pairs='every': use auto"):
        EncRLModel(cfg.model)
    cfg = _cfg(tiny_ctc_nemo, tiny_corpus, tmp_path, "model.loss.hidden.weight=1.0", "model.loss.hidden.pairs=[[5,0]]")
    with pytest.raises(EncRLConfigError, match=r"hidden.pairs has \[5, 0\]: student layers are 0..1"):
        EncRLModel(cfg.model)


def test_bf16_teacher_forward(tiny_ctc_nemo, tiny_corpus, tmp_path):
    """teacher.dtype=bfloat16 runs the teacher under autocast; the losses still get float32 tensors."""
    fp32 = EncRLModel(_cfg(tiny_ctc_nemo, tiny_corpus, tmp_path / "a").model).eval()
    bf16 = EncRLModel(_cfg(tiny_ctc_nemo, tiny_corpus, tmp_path / "b", "model.teacher.dtype=bfloat16").model).eval()
    batch = next(iter(fp32._train_dl))
    with torch.no_grad():
        feats, lengths = fp32.preprocessor(input_signal=batch[0], length=batch[1])
        a = fp32.teacher(feats, lengths)[2]
        b = bf16.teacher(feats, lengths)[2]
    assert b.dtype == torch.float32 and torch.isfinite(b).all()
    assert (a - b).abs().max() < 0.5 and not torch.equal(a, b)
    with pytest.raises(ValueError, match="teacher.dtype='int8'"):
        EncRLModel(_cfg(tiny_ctc_nemo, tiny_corpus, tmp_path / "c", "model.teacher.dtype=int8").model)


def test_default_hints_pair_every_student_layer(tiny_ctc_nemo, tiny_corpus, tmp_path):
    """The shipped config hints every student layer (pairs: auto); cutting the student relies on it. Its
    losses are the recipe the bench chose on dev (`clip0.1`: MSE terms plus CLIP at 0.1, docs/RESULTS.md)."""
    model = EncRLModel(_cfg(tiny_ctc_nemo, tiny_corpus, tmp_path).model)
    n_s, n_t = len(model.encoder.layers), len(model.teacher.encoder.layers)
    assert [i for i, _ in model.hidden_pairs] == list(range(n_s))
    assert model.hidden_pairs[-1] == (n_s - 1, n_t - 1)
    _, terms, _ = model._step_losses(next(iter(model._train_dl)))
    assert set(terms) == {"clip", "mse_logprobs", "mse_encoder", "hidden"} and model.cfg.loss.clip.weight == 0.1


def test_audio_at_another_rate_than_the_teachers_is_refused_before_training(tiny_ctc_nemo, tiny_corpus, tmp_path):
    """lhotse would resample 8 kHz audio to the teacher's 16 kHz without a word; `evaluate` refuses it, and
    so does training, naming the file, before the first step."""
    import json

    import numpy as np
    import soundfile as sf

    from nemo_encrl.data.manifest import ManifestError, read_manifest
    from nemo_encrl.training import fit_encrl

    rows = read_manifest(tiny_corpus / "train_manifest.json")
    wav = tmp_path / "narrowband.wav"
    sf.write(wav, np.zeros(8000, dtype=np.float32), 8000)
    rows[3] = {**rows[3], "audio_filepath": str(wav), "duration": 1.0}
    manifest = tmp_path / "train_8k.json"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = _cfg(tiny_ctc_nemo, tiny_corpus, tmp_path, f"model.train_ds.manifest_filepath={manifest}")
    with pytest.raises(ManifestError, match=r"train_8k.json:4: .*narrowband.wav has sample rate 8000 Hz, the model expects 16000 Hz"):
        fit_encrl(cfg)
    assert not list(tmp_path.rglob("*.ckpt")) and not (tmp_path / "stage1.nemo").exists()
