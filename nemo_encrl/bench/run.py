"""`nemo-encrl bench`: train every job of a profile within its step budget, resumably, and measure it.

Each job lives in its own folder: settings.json (what its numbers depend on), the exp_manager run
(checkpoints at every validation), curve.json and, once done, result.json. The same command skips
finished jobs and continues an unfinished one from its last checkpoint up to the same step budget.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
from dataclasses import asdict
from pathlib import Path

from omegaconf import DictConfig

from nemo_encrl.bench.budget import Costs, job_steps, load_or_measure, stage1_step_cost, student_step_cost
from nemo_encrl.bench.measure import measure, retime, retimed
from nemo_encrl.bench.plan import Job, check_profile, plan_jobs, stage1_losses, stage1_of, stage2_kl, sweep_jobs
from nemo_encrl.bench.settings import (
    check_settings, extended_from, file_digest, job_settings, pinned_config, record_settings, stored_settings,
)
from nemo_encrl.config import CONF_DIR, load_config
from nemo_encrl.joblog import say


def corpus_dir(name: str) -> Path:
    return Path("data/corpus") / name


def train_hours(cfg: DictConfig, data: str) -> float:
    from nemo_encrl.data.manifest import manifest_hours

    return manifest_hours(corpus_dir(cfg.data[data].corpus) / "train_manifest.json")


def _encoder(cfg: DictConfig) -> list[str]:
    return [f"model.encoder.{k}={v}" for k, v in cfg.student.items()]


def _common(cfg: DictConfig, job: Job, steps: int, folder: Path) -> list[str]:
    return [f"model.train_ds.manifest_filepath={corpus_dir(cfg.data[job.data].corpus)}/train_manifest.json",
            f"model.validation_ds.manifest_filepath={corpus_dir(cfg.eval_corpus)}/dev_manifest.json",
            f"model.train_ds.batch_duration={cfg.batch_duration}", f"seed={job.seed}", f"trainer.max_steps={steps}",
            "trainer.max_epochs=-1", f"trainer.val_check_interval={cfg.validate_every}",
            "trainer.check_val_every_n_epoch=null", f"learning_curve={folder}/curve.json",
            f"exp_manager.exp_dir={folder}", *cfg.get("overrides", [])]  # fmt: skip


def _scratch_config(cfg: DictConfig, name: str) -> list[str]:
    config, reg = cfg.scratch.configs[name], cfg.regularization
    after = config.get("regularize_after")
    return [f"model.optim.lr={config.lr}", f"regularization.after_steps={'null' if after is None else int(after)}",
            f"regularization.dropout={reg.dropout}", *[f"regularization.spec_augment.{k}={v}" for k, v in reg.spec_augment.items()]]


def cache_folder(cfg: DictConfig, data: str) -> Path:
    return Path(cfg.out_dir) / f"teacher_cache_{data}"


def _stage1_config(cfg: DictConfig, job: Job, steps: int, folder: Path, recipe_losses: bool = True) -> DictConfig:
    cache = [f"model.teacher.cache={cache_folder(cfg, job.data)}"] if cfg.data[job.data].get("teacher_cache") else []
    losses = stage1_losses(cfg, job.recipe) if recipe_losses else {}
    return load_config("encrl", str(pinned_config(cfg, "stage1")), [
        f"model.teacher.path={cfg.teacher}", *_common(cfg, job, steps, folder), *_encoder(cfg), *cache,
        *[f"model.loss.{k}.weight={v}" for k, v in losses.items()],
        f"output_nemo={folder}/stage1.nemo", *cfg.get("stage1_overrides", []),
    ])  # fmt: skip


def train_job(cfg: DictConfig, job: Job, steps: int, folder: Path, chosen: str) -> str:
    """Train `job` for `steps` optimizer steps (continuing its checkpoint if any); returns the .nemo."""
    from nemo_encrl.finetune import finetune_students
    from nemo_encrl.training import fit_encrl

    if job.kind == "stage1":
        return str(fit_encrl(_stage1_config(cfg, job, steps, folder)))
    if job.kind == "encrl":
        init = ["init.from=stage1", f"init.stage1={Path(cfg.out_dir) / stage1_of(cfg, job).name / 'stage1.nemo'}",
                *_encoder(cfg)]  # the architecture comes from stage 1; the Noam schedule reads model.encoder.d_model
        extra = [*_scratch_config(cfg, chosen), *cfg.get("stage2_overrides", [])]  # the winner's lr and regularisation
        if kl := stage2_kl(cfg, job.recipe):
            extra += [f"distillation.weight={kl}", f"distillation.teacher={cfg.teacher}",
                      f"distillation.cache={cache_folder(cfg, job.data)}"]
    else:
        init = ["init.from=scratch", f"init.teacher={cfg.teacher}", *_encoder(cfg)]
        extra = [*_scratch_config(cfg, job.config), *cfg.get("scratch_overrides", [])]
    results = finetune_students(load_config("finetune", str(pinned_config(cfg, "finetune")), [
        *init, f"init.depths=[{job.depth}]", f"output_dir={folder}", *_common(cfg, job, steps, folder), *extra]))  # fmt: skip
    return results[job.depth]["nemo"]


def curve(folder: Path) -> list[dict]:
    path = folder / "curve.json"
    return json.loads(path.read_text()) if path.exists() else []


def last_dev_wers(points: list[dict], n: int = 3) -> list[float]:
    return [p["val_wer"] for p in points if "val_wer" in p][-n:]


def dev_score(points: list[dict]) -> float | None:
    """How every choice on dev scores a run: its mean dev WER over the last three validations (None: none yet)."""
    wers = last_dev_wers(points)
    return statistics.mean(wers) if wers else None


def choose_scratch(cfg: DictConfig, out: Path, record: bool = True) -> tuple[str, dict]:
    """The sweep's winner: the lowest mean dev WER over its last three validations. `record`: keep the
    choice in scratch_choice.json, which the students read (only once the sweep has finished)."""
    scores = {}
    for job in sweep_jobs(cfg):
        score = dev_score(curve(out / job.name))
        scores[job.config] = float("inf") if score is None else score
    chosen = min(scores, key=scores.get)
    if record:
        (out / "scratch_choice.json").write_text(json.dumps({"chosen": chosen, "mean_last3_dev_wer": scores}, indent=1))
    return chosen, scores


def prepare(cfg: DictConfig) -> tuple[Costs, dict[str, float]]:
    """Corpora, the teacher caches stage 1 reads, and the step costs (measured once per out_dir)."""
    from nemo_encrl.bench.cost import costs_from_timing, time_steps
    from nemo_encrl.cache.builder import build_teacher_cache
    from nemo_encrl.data.corpus import build_corpus, load_profile

    for corpus in dict.fromkeys([*(d.corpus for d in cfg.data.values()), cfg.eval_corpus]):
        build_corpus(load_profile(corpus, CONF_DIR), corpus_dir(corpus))
    used = dict.fromkeys(fam.data for fam in [*cfg.families, *(cfg.get("repeat") or [])])
    for data in used:
        if cfg.data[data].get("teacher_cache"):
            say(f"[bench] teacher cache of '{data}' ({cfg.data[data].corpus}/train) -> {cache_folder(cfg, data)}")
            probe = Job("stage1", data, 1, recipe=next(iter(cfg.recipes)))
            # the config's own loss weights (all on), not a recipe's: the cache holds what every recipe reads
            build_teacher_cache(_stage1_config(cfg, probe, 1, Path(cfg.out_dir) / "cost_probe", recipe_losses=False))
    hours = {data: train_hours(cfg, data) for data in cfg.data}

    def measure_costs() -> Costs:
        data = next((d for d in used if cfg.data[d].get("teacher_cache")), next(iter(used)))
        say(f"[bench] measuring step costs on '{data}' batches ({cfg.cost.steps} steps of each kind)")
        probe = Job("stage1", data, 1, recipe=next(iter(cfg.recipes)))
        timing = time_steps(_stage1_config(cfg, probe, 1, Path(cfg.out_dir) / "cost_probe"),
                            [int(d) for d in cfg.depths], int(cfg.cost.steps), int(cfg.cost.warmup))  # fmt: skip
        return Costs.from_dict(costs_from_timing(timing, int(cfg.student.n_layers)))

    return load_or_measure(cfg, measure_costs), hours


def _run_job(cfg: DictConfig, job: Job, steps: int, chosen: str | None, label: str, say_done: bool = True) -> dict:
    """Train, measure and record one job, or reuse its finished run (`say_done`: say so; after a wave of
    worker processes the finished runs are only collected)."""
    out = Path(cfg.out_dir)
    folder = out / job.name
    settings = job_settings(cfg, job, steps, chosen)
    if (old_steps := extended_from(folder, settings)) is not None:
        (folder / "result.json").rename(folder / f"result_{old_steps}_steps.json")  # kept: the shorter run's numbers
        record_settings(folder, settings)
        print(f"{label} {job.name}: budget raised from {old_steps} to {steps} steps, continuing from its last checkpoint",
              flush=True)  # fmt: skip
    elif (folder / "result.json").exists():
        check_settings(folder, settings)
        if say_done:
            print(f"{label} {job.name}: done before, skipped", flush=True)
        return json.loads((folder / "result.json").read_text())
    elif folder.exists() and stored_settings(folder):
        check_settings(folder, settings)
        done = max((p.get("step", 0) for p in curve(folder)), default=0)
        print(f"{label} {job.name}: unfinished, continuing from its last checkpoint (~step {done} of {steps})", flush=True)
    else:
        record_settings(folder, settings)
        print(f"{label} {job.name}: {steps} steps", flush=True)
    with quiet_job(cfg, folder / "log.txt", f"{label} {job.name}"):
        nemo = train_job(cfg, job, steps, folder, chosen)
        points = curve(folder)
        result = {**asdict(job), "name": job.name, "method": job.method, "steps": steps, "nemo": nemo,
                  "train_seconds": points[-1]["wall_seconds"] if points else None}  # fmt: skip
        if job.kind != "stage1":
            result.update(measure(nemo, corpus_dir(cfg.eval_corpus) / "test_manifest.json", folder, cfg,
                                  timed=not side_by_side(cfg)))  # fmt: skip
    (folder / "result.json").write_text(json.dumps(result, indent=1))
    wers = last_dev_wers(points, 1)
    print(f"{label} {job.name}: done, {steps} steps in {(result['train_seconds'] or 0) / 60:.1f} min"
          + (f", last dev WER {100 * wers[0]:.1f}%" if wers else "")
          + (f", test WER {100 * result['wer']:.1f}%" if "wer" in result else ""), flush=True)  # fmt: skip
    return result


@contextlib.contextmanager
def quiet_job(cfg: DictConfig, log: Path, what: str):
    """With `quiet: true` in the profile, the job's output goes to `log` and the terminal keeps its
    progress bar; a failure names the log."""
    from nemo_encrl.joblog import job_log

    if not cfg.get("quiet"):
        yield
        return
    print(f"{what}: its log is {log}", flush=True)
    try:
        with job_log(log):
            yield
    except Exception:
        print(f"{what}: failed; the end of {log} says why", file=sys.stderr, flush=True)
        raise


def all_jobs(cfg: DictConfig, chosen: str) -> list[Job]:
    return list(dict.fromkeys([*sweep_jobs(cfg), *plan_jobs(cfg, chosen)]))


def run_one(cfg: DictConfig, name: str) -> dict:
    """One job of the profile by its folder name (what `workers` > 1 runs in each process)."""
    out = Path(cfg.out_dir)
    costs = load_or_measure(cfg, lambda: _never_measured(out))
    chosen = json.loads((out / "scratch_choice.json").read_text())["chosen"] if (out / "scratch_choice.json").exists() else only_scratch_config(cfg)
    jobs = {j.name: j for j in [*sweep_jobs(cfg), *plan_jobs(cfg, chosen or "?")]}
    if name not in jobs:
        raise KeyError(f"--job {name}: no such job in profile {cfg.name} (yet: students wait for the scratch sweep)")
    job = jobs[name]
    return _run_job(cfg, job, job_steps(cfg, costs, job, train_hours(cfg, job.data)), chosen, f"[job {name}]")


def _never_measured(out: Path) -> Costs:
    raise FileNotFoundError(f"{out}/cost.json: the step costs were never measured there; run the bench first")


def report_only(cfg: DictConfig, retime_first: bool = False) -> Path:
    """The report from the finished runs as they are (after `--retime`: with every speed measured again)."""
    from nemo_encrl.bench.report import write_report

    check_profile(cfg)
    out = Path(cfg.out_dir)
    if not (out / "teacher" / "result.json").exists():
        raise FileNotFoundError(f"{out}/teacher/result.json: no finished bench in out_dir={out} to report on")
    costs = load_or_measure(cfg, lambda: _never_measured(out))
    sweep_done = all((out / j.name / "result.json").exists() for j in sweep_jobs(cfg))
    chosen, _ = choose_scratch(cfg, out, record=sweep_done)  # an unfinished sweep: a provisional choice
    jobs = all_jobs(cfg, chosen)
    if retime_first:
        retime(cfg, [out / "teacher", *(out / j.name for j in jobs if j.kind != "stage1")],
               corpus_dir(cfg.eval_corpus) / "test_manifest.json")  # fmt: skip
    return write_report(cfg, jobs, costs, {data: train_hours(cfg, data) for data in cfg.data}, chosen,
                        provisional=not sweep_done)


def run_bench(cfg: DictConfig) -> Path:
    from nemo_encrl.bench.report import write_report

    check_profile(cfg)
    if not Path(cfg.teacher).is_file():
        raise FileNotFoundError(f"bench teacher={cfg.teacher}: no such .nemo file (train one with nemo-encrl teacher)")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_job(cfg, out / "prepare_log.txt", "[bench] corpora, teacher cache, step costs"):
        costs, hours = prepare(cfg)
    for job in [*sweep_jobs(cfg), *plan_jobs(cfg, "?")]:  # every budget is valid before anything trains
        job_steps(cfg, costs, job, hours[job.data])
    teacher = out / "teacher"
    teacher_settings = {"teacher": file_digest(cfg.teacher), "eval_corpus": cfg.eval_corpus}
    if (teacher / "result.json").exists():
        check_settings(teacher, teacher_settings)
    else:
        record_settings(teacher, teacher_settings)
        with quiet_job(cfg, teacher / "log.txt", "[bench] scoring the teacher"):
            result = measure(cfg.teacher, corpus_dir(cfg.eval_corpus) / "test_manifest.json", teacher, cfg,
                             timed=not side_by_side(cfg))  # fmt: skip
        (teacher / "result.json").write_text(json.dumps(result, indent=1))

    sweep = sweep_jobs(cfg)
    stage1 = [j for j in plan_jobs(cfg, "?") if j.kind == "stage1"]  # stage 1 needs no sweep result
    workers, only = side_by_side(cfg), only_scratch_config(cfg)
    # a stale run stops the bench before training (the students too, where no sweep has to choose first)
    _check_reusable(cfg, costs, hours, all_jobs(cfg, only) if only else [*sweep, *stage1], only)
    if workers and only:  # every job in one wave: students start as soon as their stage 1 is done
        _wave(cfg, costs, hours, all_jobs(cfg, only), only, "bench")
    elif workers:
        _wave(cfg, costs, hours, [*sweep, *stage1], None, "sweep + stage 1")
    for i, job in enumerate(sweep, 1):
        _run_job(cfg, job, job_steps(cfg, costs, job, hours[job.data]), None, f"[scratch sweep {i}/{len(sweep)}]",
                 say_done=not workers)  # fmt: skip
    chosen, scores = choose_scratch(cfg, out)
    print(f"[bench] scratch sweep: {chosen} chosen (mean dev WER of the last 3 validations: "
          + ", ".join(f"{k} {100 * v:.1f}%" for k, v in scores.items()) + ")", flush=True)
    rest = [j for j in plan_jobs(cfg, chosen) if j not in sweep]
    if not only:
        _check_reusable(cfg, costs, hours, rest, chosen)
    if workers and not only:
        _wave(cfg, costs, hours, [j for j in rest if j.kind != "stage1"], chosen, "students + scratch")
    units = [_units(cfg, costs, job, job_steps(cfg, costs, job, hours[job.data])) for job in rest]
    for i, job in enumerate(rest):
        left = sum(units[i:]) * (costs.unit_ms or 0) / 60000
        _run_job(cfg, job, job_steps(cfg, costs, job, hours[job.data]), chosen,
                 f"[bench {i + 1}/{len(rest)}, ~{left:.0f} min of training left at the measured step cost]",
                 say_done=not workers)  # fmt: skip
    models = [out / "teacher", *(out / j.name for j in all_jobs(cfg, chosen) if j.kind != "stage1")]
    if workers and not retimed(models):  # the jobs trained side by side: time them now, nothing else running
        with quiet_job(cfg, out / "retime_log.txt", "[bench] timing each architecture beside the teacher"):
            retime(cfg, models, corpus_dir(cfg.eval_corpus) / "test_manifest.json")
    return write_report(cfg, all_jobs(cfg, chosen), costs, hours, chosen)


def side_by_side(cfg: DictConfig) -> bool:
    """Jobs run in `workers` processes at once: none is timed while the others train."""
    return int(cfg.get("workers", 1)) > 1


def only_scratch_config(cfg: DictConfig) -> str | None:
    """The scratch config when there is just one: nothing for a sweep to choose, no sweep to wait for."""
    return next(iter(cfg.scratch.configs)) if len(cfg.scratch.configs) == 1 else None


def _check_reusable(cfg: DictConfig, costs: Costs, hours: dict, jobs: list[Job], chosen: str | None) -> None:
    """Every existing run folder among `jobs` was made under today's settings (or only a smaller budget, which
    it continues): otherwise stop now, not hours later."""
    for job in jobs:
        folder = Path(cfg.out_dir) / job.name
        if folder.exists() and stored_settings(folder):
            settings = job_settings(cfg, job, job_steps(cfg, costs, job, hours[job.data]), chosen)
            if extended_from(folder, settings) is None:
                check_settings(folder, settings)


def _wave(cfg: DictConfig, costs: Costs, hours: dict, jobs: list[Job], chosen: str | None, label: str) -> None:
    """`jobs` in `workers` processes at once; finished ones (same settings) start no process."""
    from nemo_encrl.bench.parallel import run_wave

    steps = {j.name: job_steps(cfg, costs, j, hours[j.data]) for j in jobs}
    done = {j.name for j in jobs if (Path(cfg.out_dir) / j.name / "result.json").exists()
            and stored_settings(Path(cfg.out_dir) / j.name) == job_settings(cfg, j, steps[j.name], chosen)}
    units = _wave_units(cfg, costs, hours, jobs)
    # stage 1 first (its students wait for it), then the longest jobs first: the workers finish together
    jobs = sorted(jobs, key=lambda j: (j.kind != "stage1", -units[j.name]))
    deps = {j.name: {stage1_of(cfg, j).name} for j in jobs if j.kind == "encrl"}
    run_wave(cfg, [j.name for j in jobs], label, units, done=done, deps=deps)


def _wave_units(cfg: DictConfig, costs: Costs, hours: dict, jobs: list[Job]) -> dict[str, float]:
    return {j.name: _units(cfg, costs, j, job_steps(cfg, costs, j, hours[j.data])) for j in jobs}


def _units(cfg: DictConfig, costs: Costs, job: Job, steps: int) -> float:
    """A job's training compute in full-depth CTC steps (teacher cache builds aside), for the ETA."""
    if job.kind == "stage1":
        return steps * stage1_step_cost(cfg, costs, job.data)
    return steps * student_step_cost(cfg, costs, job.recipe, job.depth)
