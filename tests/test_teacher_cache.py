"""Teacher-output cache: built once on the tiny corpus with the tiny teacher; stage 1 reads it back and
gets the same losses as with the teacher online; stale caches, missing cuts, uncacheable options and
a killed build are all handled."""

import json
import shutil

import pytest
import torch
from omegaconf import open_dict

from nemo_encrl.cache import TeacherCache, TeacherCacheError
from nemo_encrl.cache.builder import build_teacher_cache
from nemo_encrl.cache.compress import topk_compress, topk_expand
from nemo_encrl.config import load_config
from nemo_encrl.models import EncRLModel

pytestmark = pytest.mark.slow


def _cfg(teacher, corpus, work, *extra):
    from conftest import tiny_encrl_overrides

    return load_config("encrl", "encrl_clip_mse", [*tiny_encrl_overrides(teacher, corpus, work), "model.loss.clip.weight=1.0",
                                                   f"model.teacher.cache={work}/cache", *extra])  # every term, CLIP too  # fmt: skip


@pytest.fixture(scope="module")
def built(tiny_ctc_nemo, tiny_corpus, tmp_path_factory):
    """A float32 cache (exact comparison) and a float16 one (the default) of the tiny train split."""
    caches = {}
    for dtype in ("float32", "float16"):
        work = tmp_path_factory.mktemp(f"cache_{dtype}")
        caches[dtype] = build_teacher_cache(_cfg(tiny_ctc_nemo, tiny_corpus, work, f"teacher_cache.dtype={dtype}",
                                                 "teacher_cache.shard_size=16"))  # fmt: skip
    return caches


def _model(teacher, corpus, work, cache, *extra):
    return EncRLModel(_cfg(teacher, corpus, work, f"model.teacher.cache={cache}", *extra).model)


def _same_batch_losses(model, training: bool = False):
    """Stage-1 losses of one training batch with the cached teacher and with the teacher online. In
    training mode the student's features are dithered (same random draws for both calls); the teacher
    sees un-dithered features either way."""
    model.train(training)
    batch = next(iter(model._train_dl))
    assert len(batch) == 5 and set(batch[4]) == {"fields", "lengths", "cut_ids"}
    losses = []
    for b in (batch, batch[:4]):
        torch.manual_seed(0)
        with torch.no_grad():
            losses.append(model._step_losses([x.clone() if torch.is_tensor(x) else x for x in b])[1])
    return losses


def test_cache_record_and_round_trip(built, tiny_ctc_nemo):
    from nemo_encrl.teacher import load_ctc_model

    meta = json.loads((built["float32"] / "cache.json").read_text())
    assert meta["complete"] and meta["summary"]["utterances"] == 40
    assert meta["layout"]["hidden_layers"] == [0, 1]  # auto pairs of a 2-layer student with a 2-layer teacher
    assert len(list(built["float32"].glob("arrays-*.h5"))) == 3  # 40 utterances in shards of 16
    per_second = meta["summary"]["bytes_per_audio_second"]
    assert per_second["teacher_encoder"] == per_second["teacher_hidden_0"]  # same width
    assert "teacher_hidden_1" not in per_second  # the last layer's output is the encoder output: stored once
    half = json.loads((built["float16"] / "cache.json").read_text())["summary"]["bytes_per_audio_second"]
    assert half["teacher_encoder"] == pytest.approx(per_second["teacher_encoder"] / 2)
    # one utterance read back equals the teacher's encoder output on that utterance alone
    from lhotse import CutSet

    cut = next(iter(CutSet.from_file(built["float32"] / "cuts.jsonl.gz")))
    teacher = load_ctc_model(path=tiny_ctc_nemo).eval()
    audio = torch.from_numpy(cut.load_audio())
    with torch.no_grad():
        feats, lengths = teacher.preprocessor(input_signal=audio, length=torch.tensor([audio.shape[1]]))
        expected = teacher.encoder(audio_signal=feats, length=lengths)[0][0].T
    stored = torch.from_numpy(TeacherCache(built["float32"]).index[cut.id]["teacher_encoder"].load())
    assert stored.dtype == torch.float32
    assert torch.allclose(stored, expected, atol=1e-4)


@pytest.mark.parametrize("training", [False, True])
def test_cached_losses_equal_online_losses(built, tiny_ctc_nemo, tiny_corpus, tmp_path, training):
    for dtype, tol in (("float32", 1e-4), ("float16", 2e-2)):
        model = _model(tiny_ctc_nemo, tiny_corpus, tmp_path / dtype, built[dtype])
        assert model.preprocessor.featurizer.dither > 0  # the student's features are dithered in training
        cached, online = _same_batch_losses(model, training)
        assert set(cached) == set(online) == {"clip", "mse_logprobs", "mse_encoder", "hidden"}
        for name in online:
            assert float(cached[name]) == pytest.approx(float(online[name]), rel=tol, abs=tol * 1e-2), (dtype, name)


def test_topk_keeps_the_top_and_sums_to_one():
    logp = torch.log_softmax(torch.randn(3, 7, 50) * 3, dim=-1)
    values, indices = topk_compress(logp, 5)
    full = topk_expand(values.half(), indices.short(), 50)
    assert torch.allclose(full.exp().sum(-1), torch.ones(3, 7), atol=1e-3)
    assert torch.allclose(full.gather(-1, indices), values, atol=1e-2)
    assert torch.equal(full.argmax(-1), logp.argmax(-1))
    with pytest.raises(ValueError, match="0 < k < vocabulary size 50"):
        topk_compress(logp, 50)


def test_topk_cache_trains_kl(tiny_ctc_nemo, tiny_corpus, tmp_path):
    """A top-k cache gives exactly the KL against the teacher's top-k distribution (the rest spread
    evenly), up to fp16 rounding; how much that changes training is measured in docs/TEACHER_CACHE.md."""
    from nemo_encrl.losses import ctc_kl_loss

    extra = ["model.loss.kl.weight=1.0", "model.loss.mse_logprobs.weight=0", "teacher_cache.logprobs=topk",
             "teacher_cache.logprobs_topk=8"]  # fmt: skip
    folder = build_teacher_cache(_cfg(tiny_ctc_nemo, tiny_corpus, tmp_path, *extra))
    meta = json.loads((folder / "cache.json").read_text())
    assert meta["layout"]["logprobs"] == "topk" and "teacher_logprobs" not in meta["summary"]["bytes_per_audio_second"]
    model = _model(tiny_ctc_nemo, tiny_corpus, tmp_path, folder, *extra).eval()
    batch = next(iter(model._train_dl))
    with torch.no_grad():
        cached = model._step_losses(batch)[1]
        online = model.distill_forward(*batch[:2])
        topk_teacher = topk_expand(*topk_compress(online["teacher_logp"], 8), model.teacher_cache.vocab_size)
        expected = ctc_kl_loss(online["student_logp"], topk_teacher, online["lengths"])
    assert float(cached["kl"]) == pytest.approx(float(expected), rel=2e-2)


def test_other_teacher_is_refused(built, tiny_ctc_nemo, tiny_corpus, tmp_path):
    from nemo.collections.asr.models import ASRModel

    other = ASRModel.restore_from(str(tiny_ctc_nemo), map_location="cpu")
    with torch.no_grad():
        other.encoder.layers[0].feed_forward1.linear1.weight.mul_(1.01)
    other.save_to(str(tmp_path / "other.nemo"))
    with pytest.raises(TeacherCacheError, match=r"built for another teacher or other features \(teacher: cache '\w+', "):
        _model(tmp_path / "other.nemo", tiny_corpus, tmp_path, built["float16"])


def test_other_features_are_refused(built, tiny_ctc_nemo, tiny_corpus, tmp_path):
    stale = tmp_path / "stale"
    shutil.copytree(built["float16"], stale)
    meta = json.loads((stale / "cache.json").read_text())
    meta["features"]["n_fft"] = 1024
    (stale / "cache.json").write_text(json.dumps(meta))
    with pytest.raises(TeacherCacheError, match=r"features.n_fft: cache 1024, this run 512"):
        _model(tiny_ctc_nemo, tiny_corpus, tmp_path, stale)


def test_missing_layers_are_named(tiny_ctc_nemo, tiny_corpus, tmp_path):
    folder = build_teacher_cache(_cfg(tiny_ctc_nemo, tiny_corpus, tmp_path, "model.loss.hidden.pairs=[[1,1]]"))
    with pytest.raises(TeacherCacheError, match=r"lacks teacher layers \[0\] \(model.loss.hidden.pairs\)"):
        _model(tiny_ctc_nemo, tiny_corpus, tmp_path, folder)  # auto pairs need teacher layers 0 and 1


def test_missing_cut_is_named(built, tiny_ctc_nemo, tiny_corpus, tmp_path):
    manifest = tmp_path / "train_plus_dev.json"
    manifest.write_text((tiny_corpus / "train_manifest.json").read_text()
                        + (tiny_corpus / "dev_manifest.json").read_text())  # fmt: skip
    dev_id = json.loads((tiny_corpus / "dev_manifest.json").read_text().splitlines()[0])["audio_filepath"]
    with pytest.raises(TeacherCacheError, match=r"no teacher outputs for 12 training cut\(s\), e.g. 'dev-"):
        _model(tiny_ctc_nemo, tiny_corpus, tmp_path, built["float16"], f"model.train_ds.manifest_filepath={manifest}")
    assert dev_id  # the dev utterances are the ones named
    # and a batch that reaches the dataset anyway names its cut
    cache = TeacherCache(built["float16"])

    class Cut:
        id = "not-in-cache"

    with pytest.raises(TeacherCacheError, match="cut 'not-in-cache' has no cached teacher outputs"):
        cache.collate([Cut()])


def test_uncacheable_options_are_refused(built, tiny_ctc_nemo, tiny_corpus, tmp_path):
    cfg = _cfg(tiny_ctc_nemo, tiny_corpus, tmp_path, "+model.train_ds.perturb_speed=true")
    with pytest.raises(TeacherCacheError, match=r"model.train_ds.perturb_speed=True \(speed perturbation\)"):
        build_teacher_cache(cfg)
    with pytest.raises(TeacherCacheError, match="perturb_speed"):
        _model(tiny_ctc_nemo, tiny_corpus, tmp_path, built["float16"], "+model.train_ds.perturb_speed=true")


def test_missing_and_incomplete_caches_are_named(built, tiny_ctc_nemo, tiny_corpus, tmp_path):
    with pytest.raises(TeacherCacheError, match=r"no teacher cache there \(cache.json missing\)"):
        _model(tiny_ctc_nemo, tiny_corpus, tmp_path, tmp_path / "nowhere")
    partial = tmp_path / "partial"
    shutil.copytree(built["float16"], partial)
    meta = json.loads((partial / "cache.json").read_text())
    (partial / "cache.json").write_text(json.dumps({**meta, "complete": False}))
    with pytest.raises(TeacherCacheError, match="is incomplete"):
        _model(tiny_ctc_nemo, tiny_corpus, tmp_path, partial)


def test_killed_build_resumes(built, tiny_ctc_nemo, tiny_corpus, tmp_path, monkeypatch):
    """A build that dies in its third shard keeps the first two; started again it writes only the rest,
    and the result equals an uninterrupted build."""
    from nemo_encrl.cache import builder

    cfg = _cfg(tiny_ctc_nemo, tiny_corpus, tmp_path, "teacher_cache.dtype=float32", "teacher_cache.shard_size=16")
    real_add, calls = builder._ShardWriter.add, []

    def dying_add(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 35:
            raise KeyboardInterrupt("killed")
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(builder._ShardWriter, "add", dying_add)
    with pytest.raises(KeyboardInterrupt):
        build_teacher_cache(cfg)
    folder = tmp_path / "cache"
    assert sorted(p.name for p in folder.glob("cuts-*.jsonl.gz")) == ["cuts-00000.jsonl.gz", "cuts-00001.jsonl.gz"]
    assert (folder / "arrays-00002.h5").exists()  # the shard it died in
    assert not json.loads((folder / "cache.json").read_text())["complete"]
    kept = {p.name: p.stat().st_mtime_ns for p in folder.glob("*-0000[01].*")}

    monkeypatch.setattr(builder._ShardWriter, "add", real_add)
    calls.clear()
    build_teacher_cache(cfg)
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*-0000[01].*")} == kept
    resumed, fresh = TeacherCache(folder), TeacherCache(built["float32"])
    assert sorted(resumed.index) == sorted(fresh.index) and len(resumed.index) == 40
    for cut_id in fresh.index:
        for name, array in fresh.index[cut_id].items():
            assert torch.allclose(torch.from_numpy(resumed.index[cut_id][name].load()),
                                  torch.from_numpy(array.load()), atol=1e-5), (cut_id, name)  # fmt: skip
    # started again on a complete cache it does nothing; with another layout it refuses
    build_teacher_cache(cfg)
    with pytest.raises(TeacherCacheError, match="was started with other settings"):
        build_teacher_cache(_cfg(tiny_ctc_nemo, tiny_corpus, tmp_path, "teacher_cache.dtype=float16"))


def test_distill_without_its_cache_stops_before_training(tiny_ctc_nemo, tiny_corpus, tmp_path, capsys):
    """A missing cache stops the command in one line, before any training (the two commands a user types,
    cache-teacher then distill, run in tests/test_quickstart.py)."""
    from conftest import tiny_encrl_overrides

    from nemo_encrl.cli import main

    args = [*tiny_encrl_overrides(tiny_ctc_nemo, tiny_corpus, tmp_path), f"model.teacher.cache={tmp_path}/nowhere"]
    assert main(["distill", *args]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("nemo-encrl distill: error: model.teacher.cache=")
    assert not (tmp_path / "stage1.nemo").exists()


def test_a_run_reads_only_the_fields_its_losses_use():
    """One all-layers cache serves students of any depth; each reads only its own fields."""
    from nemo_encrl.cache import CacheLayout

    cache = CacheLayout(encoder=True, logprobs="full", hidden_layers=tuple(range(9)), encoder_layer=8)
    assert "teacher_hidden_8" not in cache.fields()  # stored once, as the encoder output
    small = CacheLayout(encoder=False, logprobs=None, hidden_layers=(2, 4, 6, 8))
    assert cache.fields_for(small) == ["teacher_encoder", "teacher_hidden_2", "teacher_hidden_4", "teacher_hidden_6"]
    kd = CacheLayout(encoder=False, logprobs="full", hidden_layers=())
    assert cache.fields_for(kd) == ["teacher_logprobs"]
    assert cache.missing_for(small) == [] and "teacher layers [9]" in cache.missing_for(
        CacheLayout(encoder=False, logprobs=None, hidden_layers=(9,)))[0]


def test_step_costs_time_every_kind_on_the_same_batches(built, tiny_ctc_nemo, tiny_corpus, tmp_path):
    """The bench's step-cost measurement (nemo_encrl/bench/cost.py) on the tiny setup: every kind of step is
    timed, and the costs come out in units of the full-depth CTC step, as the budgets read them."""
    from nemo_encrl.bench.budget import Costs
    from nemo_encrl.bench.cost import costs_from_timing, time_steps

    cfg = _cfg(tiny_ctc_nemo, tiny_corpus, tmp_path)
    with open_dict(cfg):
        cfg.model.teacher.cache = str(built["float16"])
    timing = time_steps(cfg, [2], steps=2, warmup=1)
    assert set(timing["ms"]) == {"ctc_L2", "stage1_online", "stage1_cached", "kl_cached_L2", "teacher_forward"}
    assert all(ms > 0 for ms in timing["ms"].values()) and timing["audio_seconds"] > 0 and timing["steps"] == 2
    costs = Costs.from_dict(costs_from_timing(timing, full_depth=2))
    assert costs.ctc == {2: 1.0} and set(costs.stage2_kl_cached) == {2}
    assert costs.unit_ms == timing["ms"]["ctc_L2"] and costs.teacher_per_audio_hour > 0


def test_step_costs_arithmetic():
    from nemo_encrl.bench.cost import costs_from_timing

    timing = {"ms": {"ctc_L6": 400.0, "ctc_L3": 300.0, "stage1_online": 800.0, "teacher_forward": 100.0},
              "audio_seconds": 720.0, "steps": 20, "threads": 2, "machine": "test"}  # fmt: skip
    costs = costs_from_timing(timing, full_depth=6)
    assert costs["ctc"] == {6: 1.0, 3: 0.75} and costs["stage1_online"] == 2.0
    assert costs["stage1_cached"] == 2.0  # no cache timed: charged as online
    # 20 teacher passes of 100 ms over 0.2 h of audio: 10 s an hour of audio, 25 steps of 400 ms
    assert costs["teacher_per_audio_hour"] == 25.0 and costs["stage2_kl_cached"] == {}
