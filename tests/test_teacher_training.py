"""The teacher recipe end to end on the tiny corpus: NeMo + Lightning + exp_manager, save, restore, score."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nemo_encrl.evaluate import error_rates, evaluate_manifest, seen_word_errors
from nemo_encrl.teacher import TeacherError, load_ctc_model

pytestmark = pytest.mark.slow


def test_recipe_trains_saves_and_restores(tiny_ctc_nemo: Path, tiny_corpus: Path):
    from nemo.collections.asr.models import EncDecCTCModelBPE

    assert tiny_ctc_nemo.is_file()
    model = load_ctc_model(path=tiny_ctc_nemo)
    assert isinstance(model, EncDecCTCModelBPE)
    assert model.tokenizer.vocab_size == 40
    assert model.cfg.encoder.d_model == 32 and model.cfg.encoder.subsampling_factor == 4
    # exp_manager wrote a resumable checkpoint
    assert list(tiny_ctc_nemo.parent.glob("runs/*/checkpoints/*last.ckpt"))
    # and the learning curve has the dev WER with the wall-clock it took to get there
    curve = json.loads((tiny_ctc_nemo.parent / "curve.json").read_text())
    assert curve and {"epoch", "step", "wall_seconds", "val_wer"} <= curve[0].keys()
    assert curve[-1]["step"] <= 3 and curve[-1]["wall_seconds"] > 0


def test_resume_continues_from_checkpoint(tiny_ctc_nemo: Path, tiny_corpus: Path, caplog, capfd):
    """Started again with more steps, the run picks up at step 3 instead of starting over; its progress bar
    counts the run's steps to the budget (a total and an ETA, not Lightning's `n/?` per epoch)."""
    from conftest import tiny_ctc_overrides

    from nemo_encrl.config import load_config
    from nemo_encrl.training import fit_ctc_bpe

    work = tiny_ctc_nemo.parent
    cfg = load_config("teacher", "conformer_ctc_bpe_demo", tiny_ctc_overrides(tiny_corpus, work)
                      + ["trainer.max_steps=5", "trainer.enable_progress_bar=true"])  # fmt: skip
    fit_ctc_bpe(cfg)
    ckpt = torch.load(next(work.glob("runs/*/checkpoints/*last.ckpt")), map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 5
    assert "Restored all states from the checkpoint" in caplog.text
    bar = capfd.readouterr().out  # Lightning's bars write to stdout
    assert "3/5 [" in bar and "5/5 [" in bar  # from the resumed step to the budget
    assert "Epoch 0:" in bar and not [part for part in bar.split("Epoch 0:")[1:] if "/?" in part.split("]")[0]]


def test_evaluate_report(tiny_ctc_nemo: Path, tiny_corpus: Path):
    model = load_ctc_model(path=tiny_ctc_nemo)
    report = evaluate_manifest(model, tiny_corpus / "test_manifest.json", batch_size=8)
    assert report["utterances"] == 12
    assert report["parameters"] == sum(p.numel() for p in model.parameters())
    assert report["wer"] >= 0 and report["rtf"] > 0
    assert report["substitutions"] + report["deletions"] <= report["reference_words"]


def test_error_rates_counts():
    r = error_rates(["the cat sat", "a dog"], ["the bat sat down", ""])
    assert (r["substitutions"], r["deletions"], r["insertions"], r["reference_words"]) == (1, 2, 1, 5)
    assert r["wer"] == pytest.approx(4 / 5)


def test_seen_word_errors_split_misses_by_training_vocabulary():
    # 'zyx' and 'qua' are unseen; 'the' and 'cat' seen. Misses: 'cat' (substituted), 'qua' (deleted);
    # the inserted 'down' belongs to no reference word.
    r = seen_word_errors(["the cat zyx", "qua the"], ["the bat zyx down", "the"], {"the", "cat"})
    assert (r["seen_words"], r["unseen_words"]) == (3, 2)
    assert r["unseen_rate"] == pytest.approx(2 / 5)
    assert r["seen_missed"] == pytest.approx(1 / 3) and r["unseen_missed"] == pytest.approx(1 / 2)
    assert seen_word_errors(["a b"], ["a b"], {"a", "b"})["unseen_missed"] is None


def test_stock_nemo_restores_without_plugin(tiny_ctc_nemo: Path, tiny_corpus: Path):
    """The teacher .nemo is plain NeMo: a fresh process that never imports nemo_encrl transcribes with it."""
    wav = json.loads((tiny_corpus / "test_manifest.json").read_text().splitlines()[0])["audio_filepath"]
    code = (
        "import sys; from nemo.collections.asr.models import ASRModel;"
        f"m = ASRModel.restore_from({str(tiny_ctc_nemo)!r}, map_location='cpu');"
        f"h = m.transcribe([{wav!r}], verbose=False);"
        "assert 'nemo_encrl' not in sys.modules; print('HYP', type(h[0].text).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "HYP str" in out.stdout


def test_unwritable_output_fails_before_training(tmp_path: Path, tiny_corpus: Path, capsys):
    from conftest import tiny_ctc_overrides

    from nemo_encrl.cli import main

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code = main(["teacher", *tiny_ctc_overrides(tiny_corpus, tmp_path), f"output_nemo={blocker}/teacher.nemo"])
    assert code == 2 and f"output_nemo={blocker}/teacher.nemo: cannot create its folder" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "tokenizer").exists()  # nothing was started
    (tmp_path / "folder.nemo").mkdir()
    assert main(["teacher", *tiny_ctc_overrides(tiny_corpus, tmp_path), f"output_nemo={tmp_path}/folder.nemo"]) == 2
    assert "is a folder: give the path of the .nemo file" in capsys.readouterr().err


def test_bad_teacher_inputs(tmp_path: Path, tiny_corpus: Path):
    with pytest.raises(TeacherError, match="does not exist"):
        load_ctc_model(path=tmp_path / "missing.nemo")
    junk = tmp_path / "junk.nemo"
    junk.write_text("not an archive")
    with pytest.raises(TeacherError, match="not a .nemo archive"):
        load_ctc_model(path=junk)
    with pytest.raises(TeacherError, match="exactly one"):
        load_ctc_model()


def test_not_a_ctc_model_is_named(tmp_path: Path, monkeypatch):
    """A restorable ASR model of another kind is refused by class name."""
    from nemo.collections.asr.models import ASRModel

    class FakeRNNT(torch.nn.Module):
        pass

    monkeypatch.setattr(ASRModel, "restore_from", classmethod(lambda cls, *a, **k: FakeRNNT()))
    import tarfile

    archive = tmp_path / "rnnt.nemo"
    with tarfile.open(archive, "w") as tar:
        tar.add(__file__, arcname="model_config.yaml")
    with pytest.raises(TeacherError, match="FakeRNNT, not a CTC model"):
        load_ctc_model(path=archive)


def test_unknown_pretrained_name_fails_clearly():
    with pytest.raises(TeacherError, match="could not load pretrained teacher 'stt_en_no_such_model'"):
        load_ctc_model(pretrained_name="stt_en_no_such_model")


def test_regularization_warmup_switches_by_global_step():
    from types import SimpleNamespace

    from nemo_encrl.callbacks import RegularizationWarmup

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.spec_augmentation = torch.nn.Identity()
            self.encoder = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1))

    model, callback = Model(), RegularizationWarmup(steps=5)
    augment = model.spec_augmentation
    callback.on_train_batch_start(SimpleNamespace(global_step=0), model, None, 0)
    assert model.spec_augmentation is None and model.encoder[1].p == 0.0
    callback.on_train_batch_start(SimpleNamespace(global_step=4), model, None, 0)
    assert model.spec_augmentation is None
    callback.on_train_batch_start(SimpleNamespace(global_step=5), model, None, 0)
    assert model.spec_augmentation is augment and model.encoder[1].p == 0.1
    # a run resumed past the warm-up starts regularised
    fresh, late = Model(), RegularizationWarmup(steps=5)
    late.on_train_batch_start(SimpleNamespace(global_step=7), fresh, None, 0)
    assert fresh.spec_augmentation is not None and fresh.encoder[1].p == 0.1
    # and the saved model always carries its configured regularisation
    early = RegularizationWarmup(steps=5)
    early.on_train_batch_start(SimpleNamespace(global_step=0), fresh, None, 0)
    early.on_train_end(None, fresh)
    assert fresh.spec_augmentation is not None and fresh.encoder[1].p == 0.1


def test_encoder_freeze_keeps_the_encoder_still_then_trains_it():
    from types import SimpleNamespace

    from nemo_encrl.callbacks import EncoderFreeze

    torch.manual_seed(0)
    model = torch.nn.Module()
    model.encoder = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    model.head = torch.nn.Linear(2, 1)
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=0.1)
    callback, before = EncoderFreeze(steps=2), [p.clone() for p in model.encoder.parameters()]
    stats = model.encoder[1].running_mean.clone()
    for step in range(3):
        callback.on_train_batch_start(SimpleNamespace(global_step=step), model, None, 0)
        optim.zero_grad()
        model.head(model.encoder(torch.randn(4, 2))).sum().backward()
        optim.step()
        if step < 2:  # frozen: weights and BatchNorm statistics bit-identical, the head learns
            assert all(torch.equal(p, q) for p, q in zip(model.encoder.parameters(), before))
            assert torch.equal(model.encoder[1].running_mean, stats) and not model.encoder.training
    assert model.encoder.training and not torch.equal(model.encoder[0].weight, before[0])
    # a run resumed past the freeze trains its encoder; the saved model is trainable
    late = EncoderFreeze(steps=2)
    model.encoder.requires_grad_(False)
    late.on_train_batch_start(SimpleNamespace(global_step=5), model, None, 0)
    assert all(p.requires_grad for p in model.encoder.parameters()) and model.encoder.training
    callback.on_train_batch_start(SimpleNamespace(global_step=0), model, None, 0)
    callback.on_train_end(None, model)
    assert all(p.requires_grad for p in model.encoder.parameters())
