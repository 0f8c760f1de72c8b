"""`nemo-encrl bench`: EncRL against scratch, logit KD and pruning at equal total compute.

Every run gets the same wall-clock budget on the same machine (the teacher's forward passes inside
stage 1 count). Each run lives in its own folder with its exp_manager checkpoints and, once done, a
`result.json`; a killed bench skips the finished runs and starts the unfinished one over (a run
is at most `budget_minutes` long, and only a whole run keeps its equal-budget accounting exact). The report
(`docs/RESULTS.md` and PNG plots) is regenerated from those files.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nemo_encrl.config import CONF_DIR, load_config
from nemo_encrl.training import max_time

STAGE1_LOSSES = {  # loss weights that each distillation method sets over conf/encrl/encrl_clip_mse.yaml's
    "encrl": {},                                                          # the config's CLIP + MSE terms
    "clip_only": {"mse_logprobs": 0.0, "mse_encoder": 0.0, "hidden": 0.0},
    "mse_only": {"clip": 0.0},
    "kd": {"clip": 0.0, "mse_logprobs": 0.0, "mse_encoder": 0.0, "hidden": 0.0, "kl": 1.0},
}
METHODS = ("scratch", *STAGE1_LOSSES, "prune_layers", "prune_l1", "prune_l1_size")
LABELS = {"scratch": "scratch (CTC)", "encrl": "EncRL (CLIP+MSE)", "clip_only": "EncRL CLIP only",
          "mse_only": "EncRL MSE only", "kd": "logit KD (KL)", "prune_layers": "pruned: teacher layers",
          "prune_l1": "pruned: L1 unstructured", "prune_l1_size": "pruned: L1 global, student size"}  # fmt: skip


@dataclass(frozen=True)
class Run:
    method: str
    size: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.method}_{self.size}_s{self.seed}"


def plan_runs(cfg: DictConfig) -> list[Run]:
    """Main methods at every size (all seeds at `multi_seed_size`, the first seed elsewhere); the
    ablations and baselines at `extra_size` with the first seed."""
    unknown = [m for m in [*cfg.methods.main, *cfg.methods.extra] if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown bench methods {unknown}; known: {list(METHODS)}")
    for key in ("multi_seed_size", "extra_size"):
        if cfg[key] not in cfg.sizes:
            raise ValueError(f"{key}={cfg[key]!r} is not one of sizes {list(cfg.sizes)}")
    runs = []
    for size in cfg.sizes:
        seeds = list(cfg.seeds) if size == cfg.multi_seed_size else list(cfg.seeds)[:1]
        runs += [Run(m, size, s) for m in cfg.methods.main for s in seeds]
    runs += [Run(m, cfg.extra_size, cfg.seeds[0]) for m in cfg.methods.extra]
    return runs


def _encoder_overrides(size: DictConfig) -> list[str]:
    return [f"model.encoder.{k}={v}" for k, v in size.items()]


def _layers_for_size(teacher, target_params: int) -> int:
    """How many of the teacher's layers to keep so its parameter count is closest to the student's."""
    total = sum(p.numel() for p in teacher.parameters())
    per_layer = sum(p.numel() for p in teacher.encoder.layers[0].parameters())
    rest = total - per_layer * len(teacher.encoder.layers)
    return max(1, min(len(teacher.encoder.layers), round((target_params - rest) / per_layer)))


def train_run(run: Run, cfg: DictConfig, corpus: Path, folder: Path) -> dict:
    """Train one run within its budget; returns the student path and the seconds each phase took."""
    from nemo_encrl.finetune import finetune_students
    from nemo_encrl.teacher import load_ctc_model
    from nemo_encrl.training import fit_encrl

    budget = float(cfg.budget_minutes[run.size]) * 60
    size = cfg.sizes[run.size]
    common = [f"model.train_ds.manifest_filepath={corpus}/train_manifest.json",
              f"model.validation_ds.manifest_filepath={corpus}/dev_manifest.json",
              f"seed={run.seed}", "trainer.max_epochs=-1", "trainer.max_steps=-1",
              *cfg.get("overrides", [])]  # fmt: skip
    stage2 = ["init.decoder=stage1", f"output_dir={folder}", f"exp_manager.exp_dir={folder}/stage2",
              f"learning_curve={folder}/curve.json", *common,
              *cfg.get("scratch_overrides" if run.method == "scratch" else "finetune_overrides", [])]  # fmt: skip
    timing = {"stage1_seconds": 0.0}
    if run.method in STAGE1_LOSSES:
        weights = STAGE1_LOSSES[run.method]
        stage1_nemo = folder / "stage1.nemo"
        cache, charge = _teacher_cache(cfg, corpus, common)
        if not stage1_nemo.exists():
            start = time.time()
            fit_encrl(load_config("encrl", "encrl_clip_mse", [
                f"model.teacher.path={cfg.teacher}", *common, *_encoder_overrides(size),
                *[f"model.loss.{k}.weight={v}" for k, v in weights.items()], *cache,
                f"+trainer.max_time={max_time(budget * float(cfg.stage1_share) - charge)}",
                f"exp_manager.exp_dir={folder}/stage1", f"output_nemo={stage1_nemo}",
                f"learning_curve={folder}/stage1_curve.json", *cfg.get("stage1_overrides", []),
            ]))  # fmt: skip
            (folder / "stage1.seconds").write_text(f"{time.time() - start:.1f}")
        timing["stage1_seconds"] = float((folder / "stage1.seconds").read_text()) + charge
        timing["cache_seconds_charged"] = round(charge, 1)
        init = ["init.from=stage1", f"init.stage1={stage1_nemo}", f"init.depths=[{size.n_layers}]"]
        remaining = budget - timing["stage1_seconds"]
    elif run.method == "scratch":
        init = ["init.from=scratch", f"init.teacher={cfg.teacher}", f"init.depths=[{size.n_layers}]",
                *_encoder_overrides(size)]  # fmt: skip
        remaining = budget
    else:
        from nemo_encrl.student import student_from_scratch

        teacher = load_ctc_model(path=cfg.teacher)
        student = student_from_scratch(teacher, OmegaConf.merge(teacher.cfg.encoder, size))
        student_params = sum(p.numel() for p in student.parameters())
        if run.method == "prune_layers":
            depth = _layers_for_size(teacher, student_params)
            init = ["init.from=teacher", f"init.teacher={cfg.teacher}", f"init.depths=[{depth}]"]
        elif run.method == "prune_l1_size":
            init = ["init.from=teacher", f"init.teacher={cfg.teacher}",
                    f"init.depths=[{len(teacher.encoder.layers)}]", f"init.prune_to_parameters={student_params}"]  # fmt: skip
        else:
            init = ["init.from=teacher", f"init.teacher={cfg.teacher}",
                    f"init.depths=[{len(teacher.encoder.layers)}]", f"init.prune_l1={cfg.prune_l1_amount}"]  # fmt: skip
        remaining = budget
    start = time.time()
    results = finetune_students(load_config("finetune", "ctc_finetune", [
        *init, *stage2, f"+trainer.max_time={max_time(remaining)}"]))  # fmt: skip
    timing["stage2_seconds"] = round(time.time() - start, 1)
    (nemo,) = [r["nemo"] for r in results.values()]
    return {"nemo": nemo, **timing, "budget_seconds": budget}


def _teacher_cache(cfg: DictConfig, corpus: Path, common: list[str]) -> tuple[list[str], float]:
    """With `teacher_cache: true`, one cache of the train split serves every stage-1 run (all teacher layers,
    so any size and loss mix); each stage-1 run is charged an equal share of its build time. Returns the
    stage-1 overrides that switch to it and the seconds charged to one run."""
    if not cfg.get("teacher_cache"):
        return [], 0.0
    from nemo_encrl.cache.builder import build_teacher_cache
    from nemo_encrl.cache.reader import read_meta

    folder = Path(cfg.out_dir) / "teacher_cache"
    overrides = [f"model.teacher.path={cfg.teacher}", *common, f"model.teacher.cache={folder}"]
    build_teacher_cache(load_config("encrl", "encrl_clip_mse", [*overrides, "teacher_cache.hidden_layers=all"]))
    seconds = read_meta(folder)["summary"]["build_seconds"]
    sharing = sum(r.method in STAGE1_LOSSES for r in plan_runs(cfg))
    return [f"model.teacher.cache={folder}"], seconds / max(1, sharing)


def _speeds(nemo: str, corpus: Path, folder: Path, cfg: DictConfig) -> dict:
    """The model's PyTorch and ONNX Runtime RTFs, and the teacher's timed right after it in the same process."""
    from nemo_encrl.data.manifest import read_manifest
    from nemo_encrl.speed import paired_speeds

    wavs = [r["audio_filepath"] for r in read_manifest(corpus / "test_manifest.json")][: int(cfg.speed.utterances)]
    speeds = paired_speeds({"model": nemo, "teacher": cfg.teacher}, folder, wavs, int(cfg.speed.threads),
                           int(cfg.speed.repeats))  # fmt: skip
    return {**speeds["model"], **{f"{k}_teacher": v for k, v in speeds["teacher"].items()}}


def measure(nemo: str, corpus: Path, folder: Path, cfg: DictConfig) -> dict:
    """Test WER (and per voice group), size, PyTorch and ONNX Runtime real-time factors; the teacher's
    are measured again right after the model's, in the same fresh process, for the speed ratio."""
    from nemo_encrl.evaluate import evaluate_manifest
    from nemo_encrl.pruning import nonzero_parameters
    from nemo_encrl.teacher import load_ctc_model

    model = load_ctc_model(path=nemo)
    report = evaluate_manifest(model, corpus / "test_manifest.json")
    report.update(nonzero_parameters=nonzero_parameters(model), nemo_mb=round(Path(nemo).stat().st_size / 1e6, 2))
    del model
    return {**report, **_speeds(nemo, corpus, folder, cfg)}


def retime_runs(cfg: DictConfig, runs: list[Run]) -> list[str]:
    """Measure the speeds of the teacher and of every finished run again, each beside the teacher in a
    fresh process, and keep the new numbers in result.json (WERs untouched). Timings taken while the
    machine was busy (another training, a test run) are too slow by an unknown factor; a pass on an
    idle machine replaces them all with numbers taken under the same conditions."""
    out, corpus = Path(cfg.out_dir), Path("data/corpus") / cfg.corpus
    _require_teacher(cfg)
    by_folder = {out / "teacher": None, **{out / r.name: r for r in runs}}
    done = {folder: run for folder, run in by_folder.items() if (folder / "result.json").exists()}
    for folder, run in done.items():  # a stale run must not be mixed with fresh ones; the speed settings may change
        _check_settings(folder, {**run_settings(run, cfg), "speed": _stored_settings(folder).get("speed")})
    for i, folder in enumerate(done, 1):
        result = json.loads((folder / "result.json").read_text())
        nemo = cfg.teacher if done[folder] is None else result["nemo"]
        result.update(_speeds(nemo, corpus, folder, cfg), speed_timed=time.strftime("%Y-%m-%d %H:%M"))
        (folder / "result.json").write_text(json.dumps(result, indent=1))
        if (folder / "settings.json").exists():
            settings = {**_stored_settings(folder), "speed": OmegaConf.to_container(cfg.speed)}
            (folder / "settings.json").write_text(json.dumps(settings, indent=1))
        print(f"[retime {i}/{len(done)}] {folder.name}: ONNX RTF {result['rtf_onnx']:.4f} "
              f"(teacher beside it {result['rtf_onnx_teacher']:.4f})", flush=True)
    return [f.name for f in done]


class StaleRunError(RuntimeError):
    pass


def _require_teacher(cfg: DictConfig) -> None:
    if not Path(cfg.teacher).is_file():
        raise FileNotFoundError(f"bench teacher={cfg.teacher}: no such .nemo file (train one with nemo-encrl teacher)")


def _file_digest(path: str | Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]


def run_settings(run: Run | None, cfg: DictConfig) -> dict:
    """Everything a finished run's numbers depend on; a re-run with other settings must not reuse it."""
    settings = {"corpus": cfg.corpus, "teacher": _file_digest(cfg.teacher), "speed": OmegaConf.to_container(cfg.speed)}
    if run is None:  # the teacher's own measurement
        return settings
    settings.update(
        budget_minutes=float(cfg.budget_minutes[run.size]), size=OmegaConf.to_container(cfg.sizes[run.size]),
        overrides=list(cfg.get("overrides", [])), finetune_config=_file_digest(CONF_DIR / "finetune" / "ctc_finetune.yaml"),
    )
    if run.method == "scratch":
        settings["scratch_overrides"] = list(cfg.get("scratch_overrides", []))
    else:
        settings["finetune_overrides"] = list(cfg.get("finetune_overrides", []))
    if run.method in STAGE1_LOSSES:
        settings.update(stage1_share=float(cfg.stage1_share), stage1_losses=STAGE1_LOSSES[run.method],
                        **({"teacher_cache": True} if cfg.get("teacher_cache") else {}),
                        stage1_overrides=list(cfg.get("stage1_overrides", [])),
                        stage1_config=_file_digest(CONF_DIR / "encrl" / "encrl_clip_mse.yaml"))  # fmt: skip
    if run.method == "prune_l1":
        settings["prune_l1_amount"] = float(cfg.prune_l1_amount)
    return settings


def _stored_settings(folder: Path) -> dict:
    path = folder / "settings.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _check_settings(folder: Path, settings: dict) -> None:
    """A finished run is reused only under the settings it was made with."""
    stored = _stored_settings(folder)
    if not stored:
        print(f"[bench] {folder}: finished before settings were recorded; reused as it is", flush=True)
        return
    changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
    if changed:
        raise StaleRunError(
            f"{folder} was made with other settings ({', '.join(changed)} changed since, e.g. {changed[0]}: "
            f"{stored.get(changed[0])!r} then, {settings.get(changed[0])!r} now): delete that folder to run it "
            "again, or give the profile another out_dir; finished runs are never overwritten"
        )


def run_bench(cfg: DictConfig) -> Path:
    from nemo_encrl.data.corpus import build_corpus, load_profile

    out = Path(cfg.out_dir)
    _require_teacher(cfg)
    corpus = Path("data/corpus") / cfg.corpus
    build_corpus(load_profile(cfg.corpus, CONF_DIR), corpus)
    runs = plan_runs(cfg)
    teacher_file = out / "teacher" / "result.json"
    if teacher_file.exists():
        _check_settings(teacher_file.parent, run_settings(None, cfg))
    else:
        teacher_file.parent.mkdir(parents=True, exist_ok=True)
        (teacher_file.parent / "settings.json").write_text(json.dumps(run_settings(None, cfg), indent=1))
        teacher_file.write_text(json.dumps(measure(cfg.teacher, corpus, teacher_file.parent, cfg), indent=1))
    for run in runs:  # before any training: a stale finished run stops the bench now, not hours later
        if (out / run.name / "result.json").exists():
            _check_settings(out / run.name, run_settings(run, cfg))
    for i, run in enumerate(runs, 1):
        folder = out / run.name
        result_file = folder / "result.json"
        if result_file.exists():
            print(f"[bench {i}/{len(runs)}] {run.name}: done before, skipped", flush=True)
            continue
        if folder.exists():  # killed mid-run: its wall-clock so far is unknown, so the run starts over
            print(f"[bench {i}/{len(runs)}] {run.name}: unfinished, starting it over", flush=True)
            shutil.rmtree(folder)
        print(f"[bench {i}/{len(runs)}] {run.name}: {LABELS[run.method]}, {cfg.budget_minutes[run.size]} min", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "settings.json").write_text(json.dumps(run_settings(run, cfg), indent=1))
        trained = train_run(run, cfg, corpus, folder)
        result = {**asdict(run), **trained, **measure(trained["nemo"], corpus, folder, cfg)}
        result_file.write_text(json.dumps(result, indent=1))
    return write_report(cfg, runs)


# ------------------------------------------------------------------------------------------ report
def _curve(folder: Path) -> list[dict]:
    path = folder / "curve.json"
    return json.loads(path.read_text()) if path.exists() else []


def _epochs(curve: list[dict]) -> list[float]:
    """Training epochs done at each validation point. With `step`s known, an epoch is the longest stretch
    of steps between two validations (a full one: validation runs at each epoch's end), so a last
    epoch cut short by the time budget counts as the fraction of it that was trained."""
    steps = [p.get("step") for p in curve]
    if not curve or None in steps:
        return [p["epoch"] + 1 for p in curve]
    full = max(b - a for a, b in zip([0, *steps], steps))
    return [round(step / full, 2) if full else 0.0 for step in steps]


def _to_target(curve: list[dict], target: float) -> tuple[float | None, float | None]:
    """Epochs and stage-2 wall-clock until dev WER first reaches `target`."""
    for point, epochs in zip(curve, _epochs(curve)):
        if point.get("val_wer") is not None and point["val_wer"] <= target:
            return epochs, point["wall_seconds"]
    return None, None


def _scratch_partner(r: dict, results: dict) -> dict | None:
    """The scratch run of the same size and seed, when both it and `r` (not itself scratch) have a curve."""
    scratch = results.get(f"scratch_{r['size']}_s{r['seed']}")
    if r["method"] == "scratch" or not scratch or not scratch["curve"] or not r["curve"]:
        return None
    return scratch


def _epoch_for_epoch(r: dict, results: dict) -> list[tuple[float, float, float | None]] | None:
    """Paper's accounting, point by point: (stage-2 epochs, dev WER, scratch's epochs to the same dev WER
    or None if it never got there) for each validation of the run; None without a scratch partner."""
    if not (scratch := _scratch_partner(r, results)):
        return None
    return [(epochs, p["val_wer"], _to_target(scratch["curve"], p["val_wer"])[0])
            for p, epochs in zip(r["curve"], _epochs(r["curve"]))]  # fmt: skip


def _against_scratch(r: dict, results: dict) -> dict | None:
    """The run against its scratch partner (same size and seed): scratch's final dev WER, the run's
    stage-2 epochs and wall-clock to reach it (None if never), scratch's epochs and wall-clock. None when
    scratch ended at 100% dev WER: every run 'reaches' that at once, which would say nothing."""
    if not (scratch := _scratch_partner(r, results)):
        return None
    target = scratch["curve"][-1]["val_wer"]
    if target >= 1.0:
        return None
    epochs, wall = _to_target(r["curve"], target)
    return {"target": target, "epochs": epochs, "wall": wall, "scratch_epochs": _epochs(scratch["curve"])[-1],
            "scratch_wall": scratch["curve"][-1]["wall_seconds"]}  # fmt: skip


def _machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()  # fmt: skip
    import os

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}, Python {platform.python_version()}"


def write_report(cfg: DictConfig, runs: list[Run]) -> Path:
    out = Path(cfg.out_dir)
    results = {r.name: json.loads((out / r.name / "result.json").read_text())
               for r in runs if (out / r.name / "result.json").exists()}  # fmt: skip
    teacher = json.loads((out / "teacher" / "result.json").read_text())
    for name, res in results.items():
        res["curve"] = _curve(out / name)
    md = [f"# Benchmark `{cfg.name}`: EncRL vs scratch, logit KD and pruning", "",
          f"- Command: `{cfg.command}`", f"- Date: {time.strftime('%Y-%m-%d')}", f"- Machine: {_machine()}",
          f"- Corpus profile `{cfg.corpus}`; teacher `{cfg.teacher}` ({teacher['parameters'] / 1e6:.2f}M parameters, "
          f"test WER {100 * teacher['wer']:.1f}%)",
          "- Budget per run (total wall-clock, stage 1 with the teacher's forward passes included): "
          + ", ".join(f"{s}: {m} min" for s, m in cfg.budget_minutes.items())
          + f"; EncRL spends {100 * float(cfg.stage1_share):.0f}% of it in stage 1"
          + ("; stage 1 reads the teacher's outputs from one teacher cache of the train split, each stage-1 run "
             "charged an equal share of its build time." if cfg.get("teacher_cache") else
             "; stage 1 runs the teacher at every step (no teacher cache)."),
          f"- Runs finished: {len(results)} of {len(runs)}.", ""]  # fmt: skip

    # main comparison, per size: mean and spread over seeds
    md += ["## Test WER at equal total compute", "",
           "| size | method | params | seeds | test WER (mean) | spread (min-max) | vs scratch | stage-2 epochs | total wall-clock |",
           "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    summary = {}
    for size in cfg.sizes:
        for method in METHODS:
            group = [r for r in results.values() if r["size"] == size and r["method"] == method]
            if not group:
                continue
            wers = [r["wer"] for r in group]
            summary[(size, method)] = {"wer": statistics.mean(wers), "params": group[0]["nonzero_parameters"],
                                       "epochs": statistics.mean(_epochs(r["curve"])[-1] if r["curve"] else 0 for r in group),
                                       "seconds": statistics.mean(r["stage1_seconds"] + r["stage2_seconds"] for r in group)}  # fmt: skip
    for (size, method), s in summary.items():
        group = [r["wer"] for r in results.values() if r["size"] == size and r["method"] == method]
        base = summary.get((size, "scratch"))
        rel = f"{100 * (s['wer'] - base['wer']) / base['wer']:+.1f}%" if base and base["wer"] > 0 else "-"
        md.append(f"| {size} | {LABELS[method]} | {s['params'] / 1e6:.2f}M | {len(group)} | {100 * s['wer']:.1f}% | "
                  f"{100 * min(group):.1f}-{100 * max(group):.1f}% | {rel} | {s['epochs']:.1f} | {s['seconds'] / 60:.1f} min |")  # fmt: skip

    # epochs and wall-clock to reach the scratch model's final dev WER
    md += ["", "## Reaching the scratch model's final dev WER", "",
           "Paper's accounting: stage-2 epochs only. Total accounting: stage 1 (teacher forward included) + stage 2. "
           "Runs whose scratch partner ended at 100% dev WER have no target and are left out.", "",
           "| run | target dev WER | stage-2 epochs to target | scratch epochs | ratio | stage-2 wall-clock | total wall-clock | scratch wall-clock |",
           "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in results.items():
        if not (v := _against_scratch(r, results)):
            continue
        target, epochs, wall, s_epochs = v["target"], v["epochs"], v["wall"], v["scratch_epochs"]
        ratio = f"{epochs / s_epochs:.2f}" if epochs else "not reached"
        stage2_wall = "-" if wall is None else f"{wall / 60:.1f} min"
        total_wall = "-" if wall is None else f"{(wall + r['stage1_seconds']) / 60:.1f} min"
        md.append(f"| {name} | {100 * target:.1f}% | {f'{epochs:.1f}' if epochs else '-'} | {s_epochs:.1f} | {ratio} | "
                  f"{stage2_wall} | {total_wall} | {v['scratch_wall'] / 60:.1f} min |")  # fmt: skip

    # epoch for epoch: how many scratch epochs each stage-2 dev WER is worth
    rows = {name: pts for name, r in results.items() if (pts := _epoch_for_epoch(r, results))}
    if rows:
        width = max(len(pts) for pts in rows.values())
        md += ["", "## Epoch for epoch (paper's accounting)", "",
               "Each cell: the run's dev WER after that many stage-2 epochs, and in brackets the epochs its scratch "
               "partner (same size and seed) needed to reach the same dev WER (`never`: not within its budget). "
               "Epochs count optimizer steps over a full epoch's steps, so an epoch cut by the budget is a fraction.", "",
               "| run | " + " | ".join(f"point {i + 1}" for i in range(width)) + " |", "|---|" + "---|" * width]  # fmt: skip
        for name, pts in rows.items():
            cells = [f"{e:.1f} ep: {100 * w:.1f}% ({f'{s:.1f}' if s else 'never'})" for e, w, s in pts]
            md.append(f"| {name} | " + " | ".join(cells + ["" for _ in range(width - len(cells))]) + " |")

    # speed and size
    timed = sorted(r.get("speed_timed", "") for r in [teacher, *results.values()])  # "" where never re-timed
    md += ["", "## Size and speed on this CPU", "",
           f"Real-time factor = compute seconds per audio second, batch 1, {cfg.speed.threads} threads, "
           f"{cfg.speed.utterances} test utterances, mel features to log-probabilities, fastest of "
           f"{cfg.speed.repeats} passes. "
           + ("Each model was timed in a fresh process together with the teacher; the ratio uses that pair."
              if all("rtf_onnx_teacher" in r for r in results.values())
              else "The ratio uses the teacher's timing from the start of the bench.")
           + (f" All were timed again on the idle machine, the passes of model and teacher taking turns (`--retime`, {timed[0]} to {timed[-1]})."
              if timed[0] else ""), "",
           "| model | nonzero params | .nemo MB | RTF PyTorch | RTF ONNX Runtime | ONNX RTF vs teacher |",
           "|---|---|---|---|---|---|",
           f"| teacher | {teacher['nonzero_parameters'] / 1e6:.2f}M | {teacher['nemo_mb']} | {teacher['rtf_pytorch']:.4f} | "
           f"{teacher['rtf_onnx']:.4f} | 1 |"]  # fmt: skip
    for name, r in results.items():
        md.append(f"| {name} | {r['nonzero_parameters'] / 1e6:.2f}M | {r['nemo_mb']} | {r['rtf_pytorch']:.4f} | "
                  f"{r['rtf_onnx']:.4f} | {_onnx_vs_teacher(r, teacher):.2f} |")  # fmt: skip

    # per voice group
    groups = sorted({g for r in [teacher, *results.values()] for g in r.get("per_group", {})})
    md += ["", "## Test WER per voice group", "", "| model | " + " | ".join(groups) + " |",
           "|---|" + "---|" * len(groups)]  # fmt: skip
    for name, r in [("teacher", teacher), *results.items()]:
        md.append(f"| {name} | " + " | ".join(
            f"{100 * r['per_group'][g]['wer']:.1f}%" if g in r.get("per_group", {}) else "-" for g in groups) + " |")

    md += ["", "## Plots", "", f"![dev WER per epoch](plots/{cfg.name}_dev_wer.png)",
           f"![test WER vs parameters](plots/{cfg.name}_wer_vs_params.png)", ""]
    md += _targets(cfg, results, summary, teacher)
    md += _versus_paper(cfg, results, summary)
    if cfg.get("notes") and Path(cfg.notes).exists():  # hand-written reading of these numbers, kept apart
        md += [f"## Notes (written after the run, from `{cfg.notes}`)", "", Path(cfg.notes).read_text().strip(), ""]
    report = Path(cfg.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    _plots(cfg, results, teacher, report.parent / "plots")
    report.write_text("\n".join(md) + "\n")
    print(f"report: {report}", flush=True)
    return report


def _onnx_vs_teacher(result: dict, teacher: dict) -> float:
    """The run's ONNX RTF over the teacher's measured beside it (older results: the bench's first teacher timing)."""
    return result["rtf_onnx"] / result.get("rtf_onnx_teacher", teacher["rtf_onnx"])


def _targets(cfg, results, summary, teacher) -> list[str]:
    lines = ["## Targets", "", "| target | measured | reached |", "|---|---|---|"]
    for size in cfg.sizes:
        enc, scr = summary.get((size, "encrl")), summary.get((size, "scratch"))
        if enc and scr and scr["wer"] > 0:
            rel = (scr["wer"] - enc["wer"]) / scr["wer"]
            lines.append(f"| EncRL test WER >= 12.5% relative below scratch ({size}) | {100 * rel:.1f}% | "
                         f"{'yes' if rel >= 0.125 else 'no'} |")  # fmt: skip
    for name, r in results.items():
        if r["method"] == "encrl" and (v := _against_scratch(r, results)):
            ratio = v["epochs"] / v["scratch_epochs"] if v["epochs"] else None
            measured = f"{ratio:.2f}" if ratio else "not reached"
            reached = "yes" if ratio and ratio <= 1 / 3 else "no"
            lines.append(f"| stage 2 reaches scratch's final dev WER in <= 1/3 of its epochs ({name}) | {measured} | {reached} |")
        if r["method"] == "encrl":
            ratio = _onnx_vs_teacher(r, teacher)
            lines.append(f"| student ONNX RTF <= 1/4 of the teacher's ({name}) | {ratio:.2f} | "
                         f"{'yes' if ratio <= 0.25 else 'no'} |")  # fmt: skip
    return lines + [""]


def _versus_paper(cfg, results: dict, summary: dict) -> list[str]:
    """The paper's three claims, each in one sentence built from this run's numbers."""
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    lines = ["## Versus the paper's claims", ""]
    for size in cfg.sizes:
        enc, scr = summary.get((size, "encrl")), summary.get((size, "scratch"))
        if enc and scr and scr["wer"] > 0:
            rel = (scr["wer"] - enc["wer"]) / scr["wer"]
            verdict = "holds" if rel >= 0.125 else "EncRL is better, by less than the paper's" if rel > 0 else "does not hold"
            lines.append(f"- Lower WER than scratch ({size}, {enc['params'] / 1e6:.2f}M): EncRL {pct(enc['wer'])} vs "
                         f"scratch {pct(scr['wer'])} test WER at the same {cfg.budget_minutes[size]} min total, "
                         f"{100 * rel:+.1f}% relative (paper: up to 12.54% lower): {verdict}.")  # fmt: skip
    for name, r in results.items():
        if r["method"] != "encrl" or not (v := _against_scratch(r, results)):
            continue
        epochs, s_epochs = v["epochs"], v["scratch_epochs"]
        if epochs:
            lines.append(f"- Fewer epochs ({name}): stage 2 reached scratch's final dev WER "
                         f"({pct(v['target'])}) after {epochs:.1f} of scratch's {s_epochs:.1f} epochs "
                         f"({s_epochs / epochs:.1f}x fewer; paper: ~3x); counting stage 1 too it took "
                         f"{(v['wall'] + r['stage1_seconds']) / 60:.1f} min against scratch's "
                         f"{v['scratch_wall'] / 60:.1f} min.")  # fmt: skip
        else:
            lines.append(f"- Fewer epochs ({name}): stage 2 never reached scratch's final dev WER "
                         f"({pct(v['target'])}) within its budget (paper: ~3x fewer epochs): does not hold.")  # fmt: skip
        first, last = (pts := _epoch_for_epoch(r, results))[0], pts[-1]
        worth = lambda e, s: f"scratch needed {s:.1f} ({s / e:.1f}x)" if s else "scratch never got there"  # noqa: E731
        lines.append(f"- Epoch for epoch ({name}): after {first[0]:.1f} stage-2 epochs its dev WER was "
                     f"{pct(first[1])}, {worth(first[0], first[2])}; after {last[0]:.1f} it was {pct(last[1])}, "
                     f"{worth(last[0], last[2])}.")  # fmt: skip
    size = cfg.extra_size
    enc = summary.get((size, "encrl"))
    for method in ("prune_layers", "prune_l1", "prune_l1_size", "kd", "clip_only", "mse_only"):
        other = summary.get((size, method))
        if enc and other:
            better = "EncRL better" if enc["wer"] < other["wer"] else "EncRL not better"
            lines.append(f"- {LABELS[method]} ({other['params'] / 1e6:.2f}M nonzero parameters): {pct(other['wer'])} "
                         f"vs EncRL {pct(enc['wer'])} ({enc['params'] / 1e6:.2f}M) at {size}: {better}.")  # fmt: skip
    return lines + [""]


def _plots(cfg, results: dict, teacher: dict, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    # top: the paper's accounting (stage-2 epochs); bottom: the total one (minutes, stage 1 included)
    fig, axes = plt.subplots(2, len(cfg.sizes), figsize=(6 * len(cfg.sizes), 8), squeeze=False)
    for col, size in enumerate(cfg.sizes):
        for r in results.values():
            if r["size"] == size and r["curve"]:
                wers, label = [100 * p["val_wer"] for p in r["curve"]], f"{LABELS[r['method']]} s{r['seed']}"
                axes[0][col].plot(_epochs(r["curve"]), wers, marker="o", label=label)
                axes[1][col].plot([(r["stage1_seconds"] + p["wall_seconds"]) / 60 for p in r["curve"]], wers,
                                  marker="o", label=label)  # fmt: skip
        axes[0][col].set(title=f"{size}: dev WER per stage-2 epoch", xlabel="stage-2 epochs", ylabel="dev WER (%)")
        axes[1][col].set(title=f"{size}: dev WER vs total wall-clock", xlabel="minutes (stage 1 + stage 2)",
                         ylabel="dev WER (%)")  # fmt: skip
        axes[0][col].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / f"{cfg.name}_dev_wer.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([teacher["nonzero_parameters"] / 1e6], [100 * teacher["wer"]], marker="*", s=150, label="teacher")
    for method in METHODS:
        pts = [(r["nonzero_parameters"] / 1e6, 100 * r["wer"]) for r in results.values() if r["method"] == method]
        if pts:
            ax.scatter(*zip(*pts), label=LABELS[method])
    ax.set(xlabel="nonzero parameters (M)", ylabel="test WER (%)", title="test WER vs parameters")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / f"{cfg.name}_wer_vs_params.png", dpi=100)
    plt.close(fig)
