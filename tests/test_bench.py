"""The benchmark: planning, step budgets from step costs, compute accounting, and the whole bench on the
tiny corpus with a tiny teacher (sweep, stage 1 -> two depths, scratch partners, report), including a
run killed mid-way that the same command continues to exactly its step budget."""

import dataclasses
import json

import pytest
from omegaconf import OmegaConf, open_dict

from nemo_encrl.bench import BenchConfigError, Job, StaleRunError, plan_jobs, run_bench, sweep_jobs
from nemo_encrl.bench.plan import check_profile
from nemo_encrl.bench import accounting as acc
from nemo_encrl.bench.budget import Costs, stage1_units, stage2_steps
from nemo_encrl.bench.run import run_one
from nemo_encrl.config import load_config

COSTS = Costs(ctc={6: 1.0, 3: 0.6}, stage1_online=1.8, stage1_cached=1.2, teacher_per_audio_hour=100.0, unit_ms=500.0)


def test_plan_sweep_first_then_families_with_partners():
    cfg = load_config("bench", "cpu")
    assert [j.name for j in sweep_jobs(cfg)] == ["scratch-reg_lr1_small_L6_s1", "scratch-reg_lr2_small_L6_s1",
                                                 "scratch-reg_lr0.5_small_L6_s1", "scratch-noreg_lr1_small_L6_s1"]  # fmt: skip
    jobs = plan_jobs(cfg, "reg_lr2")
    names = [j.name for j in jobs]
    assert names[:7] == ["stage1_mse_small_s1", "mse_small_L6_s1", "mse_small_L3_s1", "scratch-reg_lr2_small_L6_s1",
                         "scratch-reg_lr2_small_L3_s1", "stage1_mse_small_s2", "mse_small_L6_s2"]  # fmt: skip
    assert "clip0.3_small_L3_s2" in names and "clip0.3_small_L6_s2" not in names  # the sweep families: depth 3 only
    assert "clip0.1_small_L6_s2" in names  # but for dev's choice, trained at both depths
    assert "mse_same_L3_s1" in names and "scratch-reg_lr2_same_L6_s1" in names and len(names) == len(set(names))
    assert sum(j.kind == "stage1" for j in jobs) == 2 + 1 + 3 * 2 + 1  # the KL recipe shares mse's stage 1; a repeat
    assert names[-3:] == ["stage1_mse_small_s1_r1", "mse_small_L3_s1_r1", "scratch-reg_lr2_small_L3_s1_r1"]
    assert "mse_kl0.5_small_L6_s2" in names and "stage1_mse_kl0.5_small_s1" not in names


@pytest.mark.parametrize("override, message", [
    ("depths=[6,7]", r"depths \[7\]: the stage-1 student \(student.n_layers\) has 6 layers"),
    ("families.0.recipe=clip9", r"families\[0\].recipe='clip9' is not in recipes"),
    ("families.1.data=huge", r"families\[1\].data='huge' is not in data"),
    ("scratch.sweep_at.depth=4", r"scratch.sweep_at=.*depth one of depths \[6, 3\]"),
    ("+recipes.bad={clipp: 1}", r"recipes.bad: unknown stage-1 losses \['clipp'\]"),
    ("families.1.data=same", r"families\[1\]: recipe mse_kl0.5 has stage2_kl, which reads .* data same has teacher_cache: false"),
])  # fmt: skip
def test_profile_errors_name_the_key(override, message):
    from nemo_encrl.bench.plan import check_profile

    with pytest.raises(BenchConfigError, match=message):
        check_profile(load_config("bench", "cpu", [override]))


def test_stage2_budget_charges_stage1_by_cost_and_the_family_costs_what_scratch_costs():
    cfg = load_config("bench", "cpu", ["steps=3000", "stage1_steps=1000"])
    hours = 3.9
    family = stage1_units(cfg, COSTS, "small", hours)
    assert family == pytest.approx(1000 * 1.2 + 3.9 * 100)  # cached steps + the cache build
    assert stage1_units(cfg, COSTS, "same", hours) == pytest.approx(1000 * 1.8)  # online teacher, no cache
    s6, s3 = (stage2_steps(cfg, COSTS, "small", d, hours) for d in (6, 3))
    # the stage-1 share goes in proportion to the students' budgets (3000 x 1.0 and 3000 x 0.6)
    assert s6 == 3000 - round(family * 1.0 / 1.6 / 1.0) and s3 == 3000 - round(family * 0.6 / 1.6 / 0.6)
    family_total = family + s6 * 1.0 + s3 * 0.6
    assert family_total == pytest.approx(3000 * 1.0 + 3000 * 0.6, abs=1.0)  # = the scratch partners' compute
    assert stage2_steps(cfg, COSTS, "small", 3, hours) == s3  # a budget is a function of the settings alone
    kl = dataclasses.replace(COSTS, stage2_kl_cached={6: 1.05, 3: 0.65})
    assert stage2_steps(cfg, kl, "small", 3, hours, "mse_kl0.5") == round((3000 * 0.6 - family * 0.6 / 1.6) / 0.65)
    with pytest.raises(BenchConfigError, match="no stage-2 KL step cost for depth 3"):
        stage2_steps(cfg, COSTS, "small", 3, hours, "mse_kl0.5")
    with pytest.raises(BenchConfigError, match="stage 1 .* costs more than steps=500"):
        stage2_steps(load_config("bench", "cpu", ["steps=500", "stage1_steps=1000"]), COSTS, "small", 6, hours)


def test_compute_curve_shared_and_whole_stage1():
    cfg = load_config("bench", "cpu", ["steps=3000", "stage1_steps=1000"])
    r = {"kind": "encrl", "data": "same", "depth": 3, "steps": 100,
         "curve": [{"step": 50, "val_wer": 0.5}, {"step": 100, "val_wer": 0.3}, {"step": 100, "end": True}]}  # fmt: skip
    shared = acc.compute_curve(cfg, COSTS, r, 1.0)
    whole = acc.compute_curve(cfg, COSTS, r, 1.0, whole=True)
    assert shared == [(pytest.approx(1800 * 0.6 / 1.6 + 30), 0.5), (pytest.approx(1800 * 0.6 / 1.6 + 60), 0.3)]
    assert whole[0][0] == pytest.approx(1800 + 30)
    assert acc.units_to_reach(shared, 0.4) == shared[1][0] and acc.units_to_reach(shared, 0.1) is None
    scratch = {**r, "kind": "scratch"}
    assert acc.compute_curve(cfg, COSTS, scratch, 1.0)[0][0] == pytest.approx(30)


class Killed(Exception):
    """Stands for kill -9: Lightning turns a KeyboardInterrupt into a graceful stop, any other error propagates."""


def _tiny_bench(tmp_path, tiny_ctc_nemo, extra=()):
    from conftest import TINY_TRAINING

    cfg = load_config("bench", "quick", [f"teacher={tiny_ctc_nemo}", "data.small.corpus=tiny", "eval_corpus=tiny",
                                         f"out_dir={tmp_path}/bench", f"report={tmp_path}/docs/RESULTS.md",
                                         "depths=[2,1]", "steps=12", "stage1_steps=4", "validate_every=3",
                                         "speed.utterances=2", "speed.repeats=1",
                                         # pinned: budgets that do not move with the machine's load (measured
                                         # costs on a busy machine charged stage 1 more than the whole budget)
                                         "cost.pinned={ctc: {2: 1.0, 1: 0.6}, stage1_online: 1.8, stage1_cached: 1.2, "
                                         "teacher_per_audio_hour: 100.0, unit_ms: 500.0, stage2_kl_cached: {2: 1.1, 1: 0.7}}",
                                         "command=test", "scratch.configs.reg_lr1.regularize_after=2", "scratch.sweep_at.depth=2", "families.1.depths=[1]",
                                         "families.2.depths=[1]", "repeat.0.depths=[1]", *extra])  # fmt: skip
    with open_dict(cfg):
        cfg.student = OmegaConf.create({"d_model": 16, "n_layers": 2, "n_heads": 2})
        cfg.overrides = [o for o in TINY_TRAINING if not o.startswith("trainer.max_steps")] + ["model.encoder.conv_kernel_size=7"]
    return cfg


@pytest.mark.slow
def test_tiny_bench_end_to_end_resume_and_stale_settings(tiny_ctc_nemo, tmp_path, monkeypatch, capsys):
    import nemo_encrl.callbacks as callbacks

    monkeypatch.chdir(tmp_path)
    cfg = _tiny_bench(tmp_path, tiny_ctc_nemo)
    out = tmp_path / "bench"
    # the first attempt dies in the middle of the main family's depth-2 student, after its first checkpoint
    original = callbacks.LearningCurve.on_train_batch_end

    def killed(self, trainer, *args):
        original(self, trainer, *args)
        if "mse_small_L2_s1" in str(self.path) and trainer.global_step == 5:
            raise Killed("killed")

    monkeypatch.setattr(callbacks.LearningCurve, "on_train_batch_end", killed)
    with pytest.raises(Killed):
        run_bench(cfg)
    assert not (out / "mse_small_L2_s1" / "result.json").exists()
    monkeypatch.setattr(callbacks.LearningCurve, "on_train_batch_end", original)
    capsys.readouterr()
    report = run_bench(cfg)  # the same command
    printed = capsys.readouterr().out
    assert "mse_small_L2_s1: unfinished, continuing from its last checkpoint (~step 3 of" in printed
    assert printed.count("done before, skipped") == 3  # the two sweep runs and stage 1; nothing else had finished

    choice = json.loads((out / "scratch_choice.json").read_text())
    assert set(choice["mean_last3_dev_wer"]) == {"reg_lr1", "noreg_lr1"}
    for name in ("mse_small_L2_s1", "mse_small_L1_s1", f"scratch-{choice['chosen']}_small_L1_s1", "clip1_small_L1_s1",
                 "mse_kl0.5_small_L1_s1"):
        result = json.loads((out / name / "result.json").read_text())
        points = json.loads((out / name / "curve.json").read_text())
        assert points[-1]["step"] == result["steps"]  # trained exactly its budget, resumed or not
        assert [p["step"] for p in points if "val_wer" in p] == list(range(3, result["steps"] + 1, 3))
        assert result["rtf_onnx"] > 0 and 0 <= result["wer"]
    assert json.loads((out / "mse_small_L2_s1" / "result.json").read_text())["steps"] < 12  # stage 1 charged
    assert json.loads((out / "scratch-noreg_lr1_small_L2_s1" / "result.json").read_text())["steps"] == 12
    # the cache (its build charged) served both stage-1 runs; the students came from one stage 1 each
    assert json.loads((out / "teacher_cache_small" / "cache.json").read_text())["complete"]
    text = report.read_text()
    for heading in ("## Summary: test WER at equal compute", "## Scratch baseline", "## Compute to reach scratch's best",
                    "## Convergence", "## Epoch for epoch", "## Size and speed", "## Targets"):
        assert heading in text
    assert "| small | L2 | mse |" in text and "(chosen)" in text and "| noreg_lr1 | 0.245 | off |" in text
    assert "## The same command twice" in text and "| mse_small_L1_s1 |" in text.split("## The same command twice")[1]
    assert "| small | L1 | mse | 0.02M | 1 |" in text  # the repeat is not counted as another seed
    assert (tmp_path / "docs" / "plots" / "quick_dev_wer_vs_compute.png").stat().st_size > 1000

    # a finished run made under other settings is never reused nor overwritten: the bench stops first
    before = (out / "mse_small_L2_s1" / "result.json").read_text()
    with pytest.raises(StaleRunError, match=r"bench/stage1_mse_small_s1 was made with other settings \(steps"):
        run_bench(_tiny_bench(tmp_path, tiny_ctc_nemo, ["stage1_steps=5"]))
    assert (out / "mse_small_L2_s1" / "result.json").read_text() == before
    # a budget that stage 1 would eat up stops the bench before anything trains
    with pytest.raises(BenchConfigError, match=r"stage 1 \(.* units charged to depth 2\) costs more than steps=3"):
        run_bench(_tiny_bench(tmp_path, tiny_ctc_nemo, ["steps=3", f"out_dir={tmp_path}/other"]))
    assert not (tmp_path / "other" / "stage1_mse_small_s1").exists()

    # a larger budget continues a finished run from its last checkpoint: the steps already trained are kept
    name = "scratch-noreg_lr1_small_L2_s1"
    shorter = json.loads((out / name / "curve.json").read_text())
    result = run_one(_tiny_bench(tmp_path, tiny_ctc_nemo, ["steps=15"]), name)
    points = json.loads((out / name / "curve.json").read_text())
    assert result["steps"] == 15 and points[-1]["step"] == 15
    assert [p for p in points if p["step"] <= 12 and "val_wer" in p] == [p for p in shorter if "val_wer" in p]
    assert [p["step"] for p in points if "val_wer" in p] == [3, 6, 9, 12, 15]
    assert json.loads((out / name / "result_12_steps.json").read_text())["steps"] == 12
    with pytest.raises(StaleRunError, match="steps"):  # a smaller budget is another run, never a cut
        run_one(_tiny_bench(tmp_path, tiny_ctc_nemo, ["steps=9"]), name)


def test_missing_teacher_is_named(tmp_path):
    cfg = load_config("bench", "quick", [f"teacher={tmp_path}/gone.nemo", f"out_dir={tmp_path}/bench"])
    with pytest.raises(FileNotFoundError, match=r"bench teacher=.*gone.nemo: no such .nemo file"):
        run_bench(cfg)
    assert not (tmp_path / "bench").exists()


def test_job_names():
    assert Job("stage1", "small", 2, recipe="mse").name == "stage1_mse_small_s2"
    assert Job("scratch", "same", 1, depth=3, config="reg_lr1").method == "scratch-reg_lr1"


def test_job_processes_share_the_cores_out():
    """Each of `workers` job processes gets its share of the cores (oversubscribed, steps were ~4x slower)."""
    from nemo_encrl.bench.parallel import job_env

    cfg = load_config("bench", "cpu", ["workers=2"])
    assert job_env(cfg, cores=2)["OMP_NUM_THREADS"] == "1" and job_env(cfg, cores=16)["OMP_NUM_THREADS"] == "8"
    assert job_env(load_config("bench", "gpu"), cores=4)["OMP_NUM_THREADS"] == "1"  # never 0 threads
    assert job_env(load_config("bench", "cpu", ["job_threads=3"]), cores=2)["MKL_NUM_THREADS"] == "3"
    with pytest.raises(ValueError, match="job_threads=0"):
        job_env(load_config("bench", "cpu", ["job_threads=0"]))


def test_wave_eta_from_its_own_pace():
    from nemo_encrl.bench.parallel import WavePace, eta

    assert eta(600, 100, 400) == ", ~30 min left" and eta(5, 0, 400) == "" and eta(900, 400, 400) == ""
    pace = WavePace({"resumed": 100.0, "fresh": 100.0}, window_s=1800)
    t0 = pace.samples[0][0]
    pace.update({"resumed": (500, 1000), "fresh": (0, 1000)})  # met half done: only its second half counts
    assert pace.eta(t0 + 60) == ""
    pace.update({"resumed": (750, 1000)})
    assert pace.eta(t0 + 600) == ", ~50 min left"  # 25 of 150 units in 10 min
    pace.finish("resumed")
    assert pace.eta(t0 + 1200) == ", ~40 min left"
    assert pace.eta(t0 + 4800) == ""  # an hour without progress (suspended, say): no pace to go by
    pace.update({"fresh": (250, 1000)})
    assert pace.eta(t0 + 5400) == ", ~30 min left"  # going again: the pace of the last half hour, not the pause


def test_student_settings_follow_their_stage1():
    """A stage 1 retrained under other settings makes its students stale too, not only itself."""
    from nemo_encrl.bench.settings import job_settings

    job = Job("encrl", "small", 1, recipe="mse", depth=3)
    before = job_settings(load_config("bench", "cpu"), job, 100, "reg_lr1")
    after = job_settings(load_config("bench", "cpu", ["recipes.mse.clip=0.2"]), job, 100, "reg_lr1")
    assert before["stage1_settings"]["losses"] == {"clip": 0.0} and after["stage1_settings"]["losses"] == {"clip": 0.2}


def test_bench_pins_its_training_configs(tmp_path, monkeypatch, capsys):
    """A bench keeps the configs it started with: editing conf/ later changes no unfinished bench."""
    import nemo_encrl.bench.settings as settings

    conf = tmp_path / "conf"
    (conf / "finetune").mkdir(parents=True)
    (conf / "finetune" / "ctc_finetune.yaml").write_text("a: 1\n")
    monkeypatch.setattr(settings, "CONF_DIR", conf)
    cfg = OmegaConf.create({"out_dir": str(tmp_path / "bench")})
    pinned = settings.pinned_config(cfg, "finetune")
    assert pinned == tmp_path / "bench" / "configs" / "ctc_finetune.yaml" and pinned.read_text() == "a: 1\n"
    (conf / "finetune" / "ctc_finetune.yaml").write_text("a: 2\n")  # edited while the bench is unfinished
    assert settings.pinned_config(cfg, "finetune").read_text() == "a: 1\n"
    assert "differs from the copy this bench started with" in capsys.readouterr().out


def test_demo_profile_budgets_do_not_depend_on_the_machine(tmp_path):
    """The demo's step costs are pinned: its budgets come out the same without measuring anything."""
    from nemo_encrl.bench.budget import job_steps, load_or_measure

    cfg = load_config("demo", "demo", [f"out_dir={tmp_path}/demo"])
    costs = load_or_measure(cfg, lambda: pytest.fail("the demo measured its step costs"))
    check_profile(cfg)
    steps = {j.name: job_steps(cfg, costs, j, 1.329) for j in plan_jobs(cfg, "noreg")}
    assert steps["scratch-noreg_small_L6_s1"] == cfg.steps and steps["stage1_mse_small_s1"] == cfg.stage1_steps
    assert 0 < steps["mse_small_L6_s1"] < cfg.steps and 0 < steps["mse_small_L3_s1"] < cfg.steps


def _pinned_plan(profile: str, tmp_path, winner: str, hours: dict):
    """A profile's every job (sweep first), with the steps and total units its pinned costs give, measuring nothing."""
    from nemo_encrl.bench.budget import job_steps, load_or_measure
    from nemo_encrl.bench.run import _units

    cfg = load_config("bench", profile, [f"out_dir={tmp_path}/{profile}"])
    costs = load_or_measure(cfg, lambda: pytest.fail(f"the {profile} profile measured its step costs"))
    check_profile(cfg)
    sweep = sweep_jobs(cfg)
    jobs = [*sweep, *(j for j in plan_jobs(cfg, winner) if j not in sweep)]
    steps = {j.name: job_steps(cfg, costs, j, hours[j.data]) for j in jobs}
    return cfg, jobs, steps, sum(_units(cfg, costs, j, steps[j.name]) for j in jobs)


def test_cpu_profile_budgets_from_its_pinned_costs(tmp_path):
    """conf/bench/cpu.yaml (the committed benchmark): its pinned costs give every student the same stage-2
    steps on any machine, without measuring, and size the whole bench (docs/BENCHMARK.md, "Sizing")."""
    hours = {"small": 3.9136, "same": 25.829}  # the bench and teacher_x2 train splits' audio
    cfg, jobs, steps, units = _pinned_plan("cpu", tmp_path, "noreg_lr1", hours)
    assert len(jobs) == 39 and sum(j.kind == "encrl" for j in jobs) == 19 and sum(j.kind == "stage1" for j in jobs) == 10
    assert {n: steps[n] for n in ("mse_small_L6_s1", "mse_small_L3_s2", "mse_kl0.5_small_L6_s1", "mse_kl0.5_small_L3_s1",
                                  "clip1_small_L3_s1", "clip0.1_small_L6_s2", "mse_same_L6_s1", "mse_same_L3_s1")} == {
        "mse_small_L6_s1": 3618, "mse_small_L3_s2": 3618, "mse_kl0.5_small_L6_s1": 3593, "mse_kl0.5_small_L3_s1": 3234,
        "clip1_small_L3_s1": 3618, "clip0.1_small_L6_s2": 3618, "mse_same_L6_s1": 3100, "mse_same_L3_s1": 3100}  # fmt: skip
    assert 102000 < units < 110000, units  # ~106k units: ~6.4 h of a 2-core AVX-512 CPU, two 1-thread jobs


def test_cpu_short_profile_fits_one_sitting(tmp_path):
    """conf/bench/cpu_short.yaml: pinned costs (same steps everywhere), the main comparison at both depths from one
    stage 1, a total that two 1-thread workers train within a sitting, and the override (in its comment)
    that adds a second seed and the same-data setting."""
    hours = {"small": 3.9, "same": 25.8}  # the bench and teacher_x2 train splits (docs/CORPUS.md)
    cfg, jobs, steps, units = _pinned_plan("cpu_short", tmp_path, "noreg_lr0.6", hours)
    assert all(0 < s <= cfg.steps for s in steps.values())
    assert {(j.data, j.depth, j.seed) for j in jobs if j.kind == "encrl"} == {("small", 6, 1), ("small", 3, 1)}
    # two 1-thread workers at ~2.2 s a full-depth step each (measured 2026-12-04): ~70 min of training steps
    assert 3500 < units < 4000, units
    same = load_config("bench", "cpu_short", [f"out_dir={tmp_path}/cpu_short", "families=[{recipe: mse, data: small, seeds: [1, 2]}, "
                                        "{recipe: mse, data: same, seeds: [1], depths: [6]}]"])  # the comment's override
    check_profile(same)
    assert {"mse_same_L6_s1", "mse_small_L3_s2"} <= {j.name for j in plan_jobs(same, "noreg_lr0.6")}


def test_retime_times_each_architecture_once(tmp_path, monkeypatch):
    """Speed depends on the architecture alone: one timing per architecture serves all its models."""
    import nemo_encrl.bench.measure as measure

    timed = []

    def fake_speeds(nemo, manifest, folder, cfg):
        timed.append(nemo)
        return {"rtf_onnx": 0.01 * len(timed), "rtf_onnx_teacher": 0.02, "rtf_pytorch": 0.03}

    monkeypatch.setattr(measure, "speeds", fake_speeds)
    cfg = load_config("bench", "cpu", [f"teacher={tmp_path}/t.nemo"])
    arch = {"teacher": "T", "a_L6": "L6", "b_L6": "L6", "a_L3": "L3"}
    for name, a in arch.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text(json.dumps({"architecture": a, "nemo": f"{name}.nemo", "wer": 0.5}))
    folders = [tmp_path / n for n in arch] + [tmp_path / "unfinished"]
    assert not measure.retimed(folders)
    assert measure.retime(cfg, folders, tmp_path / "test.json") == list(arch)
    assert timed == [f"{tmp_path}/t.nemo", "a_L6.nemo", "a_L3.nemo"] and measure.retimed(folders)
    b = json.loads((tmp_path / "b_L6" / "result.json").read_text())
    assert b["rtf_onnx"] == 0.02 and b["speed_of"] == "a_L6" and b["wer"] == 0.5


def test_wave_starts_a_student_only_after_its_stage1(tmp_path, monkeypatch):
    """Jobs start as workers free up, in order, each once its dependencies finished; a failed stage 1
    fails its students without running them."""
    import threading
    import time
    from types import SimpleNamespace

    import nemo_encrl.bench.parallel as parallel

    events, lock = [], threading.Lock()

    def fake_run(cmd, stdout, stderr, check, env, fail=()):
        name = cmd[cmd.index("--job") + 1]
        with lock:
            events.append(("start", name))
        time.sleep({"stage1": 0.3}.get(name, 0.05))
        with lock:
            events.append(("end", name))
        return SimpleNamespace(returncode=1 if name in fail else 0)

    cfg = OmegaConf.create({"out_dir": str(tmp_path), "workers": 2, "job_threads": 1})
    monkeypatch.setattr(parallel.subprocess, "run", fake_run)
    parallel.run_wave(cfg, ["stage1", "student_a", "scratch", "student_b"], "t", deps={
        "student_a": {"stage1"}, "student_b": {"stage1"}}, status_every_s=0.01)
    order = list(events)
    assert order.index(("end", "stage1")) < order.index(("start", "student_a"))
    assert order.index(("start", "scratch")) < order.index(("end", "stage1"))  # a free worker does not idle

    events.clear()
    monkeypatch.setattr(parallel.subprocess, "run", lambda *a, **k: fake_run(*a, **k, fail={"stage1"}))
    with pytest.raises(parallel.JobFailed, match="stage1, student_a, student_b"):
        parallel.run_wave(cfg, ["stage1", "student_a", "scratch", "student_b"], "t", deps={
            "student_a": {"stage1"}, "student_b": {"stage1"}}, status_every_s=0.01)
    assert ("start", "student_a") not in events and ("start", "scratch") in events


def test_a_raised_budget_passes_the_stale_check_and_other_settings_do_not(tmp_path, monkeypatch):
    """Before training, every existing run is checked: a finished run with only a smaller `steps` is
    continued later (not refused), any other difference stops the bench."""
    import nemo_encrl.bench.run as run

    job = Job("scratch", "small", 1, depth=3, config="noreg")
    folder = tmp_path / job.name
    folder.mkdir()
    (folder / "settings.json").write_text(json.dumps({"kind": "scratch", "steps": 12, "lr": 1.0}))
    (folder / "result.json").write_text("{}")
    cfg = OmegaConf.create({"out_dir": str(tmp_path)})
    monkeypatch.setattr(run, "job_steps", lambda cfg, costs, job, hours: 15)
    monkeypatch.setattr(run, "job_settings", lambda cfg, job, steps, chosen: {"kind": "scratch", "steps": steps, "lr": 1.0})
    run._check_reusable(cfg, COSTS, {"small": 1.0}, [job], "noreg")
    monkeypatch.setattr(run, "job_settings", lambda cfg, job, steps, chosen: {"kind": "scratch", "steps": steps, "lr": 2.0})
    with pytest.raises(StaleRunError, match=r"other settings \(lr, steps changed"):
        run._check_reusable(cfg, COSTS, {"small": 1.0}, [job], "noreg")
