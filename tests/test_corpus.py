import json
from pathlib import Path

import pytest
import soundfile as sf
from omegaconf import OmegaConf

from nemo_encrl.config import CONF_DIR
from nemo_encrl.data import voices
from nemo_encrl.data.corpus import build_corpus, load_profile, plan_corpus
from nemo_encrl.data.manifest import read_manifest, validate_manifest
from nemo_encrl.data.text import fortune_sentences
from nemo_encrl.data.voices import SynthesisError, Voice, synthesize, voice_inventory


def _split_sets(plan, attr):
    return {s: {getattr(u, attr) for u in plan if u.split == s} for s in ("train", "dev", "test")}


def test_tiny_corpus_manifests_and_audio(tiny_corpus: Path):
    info = json.loads((tiny_corpus / "corpus.json").read_text())
    for split, n in (("train", 40), ("dev", 12), ("test", 12)):
        rows = validate_manifest(tiny_corpus / f"{split}_manifest.json", sample_rate=16000)
        assert len(rows) == n == info["splits"][split]["utterances"]
        for row in rows[:3]:
            audio, sr = sf.read(row["audio_filepath"])
            assert sr == 16000 and audio.ndim == 1
            assert abs(len(audio) / sr - row["duration"]) < 1e-3
            assert 0.5 < row["duration"] < 15
    engines = {r["speaker"].split(":")[0] for r in read_manifest(tiny_corpus / "train_manifest.json")}
    assert engines == {"espeak-ng", "flite"}


def test_splits_disjoint_in_voices_and_sentences(tiny_corpus: Path):
    rows = {s: read_manifest(tiny_corpus / f"{s}_manifest.json") for s in ("train", "dev", "test")}
    for key in ("speaker", "text"):
        sets = {s: {r[key] for r in rs} for s, rs in rows.items()}
        assert not sets["train"] & sets["test"], key
        assert not sets["train"] & sets["dev"], key
        assert not sets["dev"] & sets["test"], key


def test_test_pool_shared_across_profiles():
    """A model trained on `bench` train may be scored on `demo`/`tiny` test, and the teacher (trained on
    `teacher` train) on `bench` test: no voice or sentence leaks."""
    sentences = fortune_sentences()
    inventory = voice_inventory()
    bench = plan_corpus(load_profile("bench", CONF_DIR), sentences, inventory)
    for small in ("demo", "tiny", "teacher", "teacher_x2"):
        plan = plan_corpus(load_profile(small, CONF_DIR), sentences, inventory)
        for attr in ("text", "voice"):
            assert not _split_sets(bench, attr)["train"] & _split_sets(plan, attr)["test"], (small, attr)
            assert not _split_sets(plan, attr)["train"] & _split_sets(bench, attr)["test"], (small, attr)


def _assert_same_held_out(plan, reference):
    for split in ("dev", "test"):
        assert [u for u in plan if u.split == split] == [u for u in reference if u.split == split], split


def test_teacher_profile_extends_bench_train_and_keeps_its_test():
    """The teacher's corpus: bench's dev/test utterances unchanged, bench's train sentences and more."""
    sentences, inventory = fortune_sentences(), voice_inventory()
    bench = plan_corpus(load_profile("bench", CONF_DIR), sentences, inventory)
    teacher = plan_corpus(load_profile("teacher", CONF_DIR), sentences, inventory)
    _assert_same_held_out(teacher, bench)
    bench_train, teacher_train = _split_sets(bench, "text")["train"], _split_sets(teacher, "text")["train"]
    assert bench_train < teacher_train and len(teacher_train) >= 3 * len(bench_train)


def test_voices_per_sentence_repeats_train_sentences_with_other_voices():
    """teacher_x2: the teacher profile's train sentences, each said by two different voices; dev/test untouched."""
    sentences, inventory = fortune_sentences(), voice_inventory()
    teacher = plan_corpus(load_profile("teacher", CONF_DIR), sentences, inventory)
    x2 = plan_corpus(load_profile("teacher_x2", CONF_DIR), sentences, inventory)
    _assert_same_held_out(x2, teacher)
    train = [u for u in x2 if u.split == "train"]
    assert len(train) == 2 * len(_split_sets(teacher, "text")["train"])
    assert {u.text for u in train} == _split_sets(teacher, "text")["train"]
    voices_of = {}
    for u in train:
        voices_of.setdefault(u.text, set()).add(u.voice)
    assert {len(v) for v in voices_of.values()} == {2}
    assert len({u.id for u in train}) == len(train)
    # the default (1) leaves an existing profile's plan exactly as it was
    tiny = load_profile("tiny", CONF_DIR)
    once = OmegaConf.merge(tiny, {"voices_per_sentence": 1})
    assert plan_corpus(once, sentences, inventory) == plan_corpus(tiny, sentences, inventory)


def test_bad_voices_per_sentence_names_the_key():
    tiny = load_profile("tiny", CONF_DIR)
    with pytest.raises(ValueError, match="voices_per_sentence must be >= 1, got 0"):
        plan_corpus(OmegaConf.merge(tiny, {"voices_per_sentence": 0}), fortune_sentences(), voice_inventory())
    too_many = OmegaConf.merge(tiny, {"voices_per_sentence": 2, "utterances": {"train": 10**6}})
    with pytest.raises(ValueError, match="500000 sentences at 2 per sentence.*voices_per_sentence"):
        plan_corpus(too_many, fortune_sentences(), voice_inventory())


def test_plan_is_deterministic_and_seeded():
    sentences, inventory = fortune_sentences(), voice_inventory()
    cfg = load_profile("tiny", CONF_DIR)
    assert plan_corpus(cfg, sentences, inventory) == plan_corpus(cfg, sentences, inventory)
    other = OmegaConf.merge(cfg, {"seed": cfg.seed + 1})
    assert plan_corpus(other, sentences, inventory) != plan_corpus(cfg, sentences, inventory)


def test_lhotse_cuts_match_manifest(tiny_corpus: Path):
    from lhotse import CutSet

    cuts = CutSet.from_file(tiny_corpus / "dev_cuts.jsonl.gz")
    rows = read_manifest(tiny_corpus / "dev_manifest.json")
    assert sorted(c.supervisions[0].id for c in cuts) == sorted(r["utt_id"] for r in rows)
    by_id = {r["utt_id"]: r for r in rows}
    for cut in cuts:
        row = by_id[cut.supervisions[0].id]
        assert cut.supervisions[0].text == row["text"] and cut.supervisions[0].speaker == row["speaker"]
        assert cut.sampling_rate == 16000
        assert abs(cut.duration - row["duration"]) < 1e-3
    assert cuts[0].load_audio().shape[0] == 1


def test_rebuild_is_a_no_op(tiny_corpus: Path):
    before = (tiny_corpus / "train_manifest.json").stat().st_mtime_ns
    build_corpus(load_profile("tiny", CONF_DIR), tiny_corpus)
    assert (tiny_corpus / "train_manifest.json").stat().st_mtime_ns == before


def test_profile_asking_too_much_names_the_key():
    cfg = OmegaConf.merge(load_profile("tiny", CONF_DIR), {"utterances": {"test": 10**6}})
    with pytest.raises(ValueError, match="utterances.test"):
        plan_corpus(cfg, fortune_sentences(), voice_inventory())


def test_unknown_profile_lists_known():
    with pytest.raises(FileNotFoundError, match="known profiles.*bench.*demo.*tiny"):
        load_profile("huge", CONF_DIR)


def test_profile_based_on_another_changes_only_its_keys(tmp_path):
    variant = tmp_path / "bigger.yaml"
    variant.write_text("base: tiny\nname: bigger\nutterances: {train: 80}\n")
    tiny, bigger = load_profile("tiny", CONF_DIR), load_profile(str(variant), CONF_DIR)
    assert "base" not in bigger and bigger.name == "bigger" and bigger.utterances.train == 80
    assert OmegaConf.merge(tiny, {"name": "bigger", "utterances": {"train": 80}}) == bigger
    variant.write_text("base: huge\n")
    with pytest.raises(FileNotFoundError, match="corpus profile 'huge' not found"):
        load_profile(str(variant), CONF_DIR)
    variant.write_text(f"base: {variant}\n")
    with pytest.raises(ValueError, match="chain loops: .*bigger.yaml -> .*bigger.yaml"):
        load_profile(str(variant), CONF_DIR)


def test_missing_espeak_says_how_to_install(monkeypatch):
    monkeypatch.setattr(voices.shutil, "which", lambda name: None)
    with pytest.raises(SynthesisError, match="apt-get install espeak-ng"):
        synthesize(Voice("espeak-ng", "en-us+m1"), "hello world", 1.0, 50)


def test_voices_really_differ():
    """Different voices of one sentence are different signals (not one voice under several names)."""
    a = synthesize(Voice("espeak-ng", "en-us+m1"), "a quick test sentence", 1.0, 50)
    b = synthesize(Voice("espeak-ng", "en-us+f3"), "a quick test sentence", 1.0, 50)
    c = synthesize(Voice("flite", "slt"), "a quick test sentence", 1.0, 50)
    assert len({len(a), len(b), len(c)}) > 1 or not (a[:1000] == b[:1000]).all()
