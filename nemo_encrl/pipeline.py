"""The README's main job: corpus -> teacher -> EncRL stage 1 -> stage 2 at several depths -> the same
students from scratch on the same wall-clock budget -> one table. Every step reuses what an earlier
run finished (corpus, stage-1 and stage-2 .nemo files), so a killed demo continues where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from omegaconf import DictConfig

from nemo_encrl.config import CONF_DIR, REPO_ROOT, load_config
from nemo_encrl.training import max_time

log = logging.getLogger("nemo_encrl")
SHIPPED_TEACHER = REPO_ROOT / "models" / "demo_teacher.nemo"


def _timed(result_file: Path, fn) -> float:
    """Run `fn` unless `result_file` exists; the wall-clock seconds it took (kept beside the result)."""
    record = result_file.with_suffix(result_file.suffix + ".seconds")
    if result_file.exists() and record.exists():
        log.info("reusing %s", result_file)
        return float(record.read_text())
    start = time.time()
    fn()
    seconds = time.time() - start
    record.write_text(f"{seconds:.1f}")
    return seconds


def run_demo(cfg: DictConfig) -> dict:
    from nemo_encrl.cache.builder import build_teacher_cache
    from nemo_encrl.cache.reader import read_meta
    from nemo_encrl.data.corpus import build_corpus, load_profile
    from nemo_encrl.evaluate import evaluate_manifest, format_report, write_report
    from nemo_encrl.finetune import finetune_students
    from nemo_encrl.teacher import load_ctc_model
    from nemo_encrl.training import fit_ctc_bpe, fit_encrl

    start = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    profile = load_profile(cfg.profile, CONF_DIR)
    corpus = Path("data/corpus") / profile.name
    data = [f"model.train_ds.manifest_filepath={corpus}/train_manifest.json",
            f"model.validation_ds.manifest_filepath={corpus}/dev_manifest.json"]  # fmt: skip
    # the demo's runs are bounded by wall-clock (+trainer.max_time): a dev validation and checkpoint per epoch
    data += ["trainer.val_check_interval=1.0", "trainer.check_val_every_n_epoch=1"]
    students = [*data, *cfg.overrides]  # every student run: stage 1, stage 2, scratch
    steps = 3 if cfg.teacher_only else 7
    log.info("[1/%d] corpus '%s' -> %s", steps, profile.name, corpus)
    build_corpus(profile, corpus, num_workers=int(cfg.workers))

    teacher_path = Path(cfg.teacher or SHIPPED_TEACHER)
    if cfg.retrain_teacher or not teacher_path.exists():
        why = "retrain_teacher=true" if cfg.retrain_teacher else f"{teacher_path} not found"
        log.info("[2/%d] training a teacher (%s), budget %s", steps, why, cfg.teacher_budget)
        teacher_cfg = load_config("teacher", "conformer_ctc_bpe_demo", [
            *data, f"model.test_ds.manifest_filepath={corpus}/test_manifest.json",
            f"model.tokenizer.dir={out}/tokenizer", f"exp_manager.exp_dir={out}/teacher_runs",
            f"+trainer.max_time={cfg.teacher_budget}", f"output_nemo={out}/teacher.nemo", *cfg.teacher_overrides,
        ])  # fmt: skip
        teacher_path = fit_ctc_bpe(teacher_cfg)
    else:
        log.info("[2/%d] reusing teacher %s (retrain_teacher=true trains a new one)", steps, teacher_path)

    test = corpus / "test_manifest.json"
    rows = []

    def evaluate(name: str, path: Path, method: str, train_seconds: float | None) -> dict:
        report = evaluate_manifest(load_ctc_model(path=path), test)
        report.update(name=name, method=method, nemo=str(path), train_seconds=train_seconds,
                      nemo_mb=round(path.stat().st_size / 1e6, 2))  # fmt: skip
        write_report(report, out / "reports" / f"{name}.json")
        print(format_report(report, f"{name} on {profile.name}/test"), flush=True)
        rows.append(report)
        return report

    log.info("[3/%d] evaluating the teacher on %s", steps, test)
    evaluate("teacher", teacher_path, "teacher", None)
    if cfg.teacher_only:
        return _finish(rows, out, start)

    stage1_nemo = out / "stage1" / "encrl_stage1.nemo"
    stage1 = [f"model.teacher.path={teacher_path}", *students, f"model.encoder.n_layers={max(cfg.depths)}",
              *cfg.stage1_overrides]  # fmt: skip
    t_cache = 0.0
    if cfg.teacher_cache:  # the teacher runs once per utterance; its time counts as stage 1's
        cache = out / "teacher_cache"
        log.info("[4/%d] teacher cache of the train split -> %s", steps, cache)
        stage1.append(f"model.teacher.cache={cache}")
        build_teacher_cache(load_config("encrl", "encrl_clip_mse", stage1))  # resumes, or returns when complete
        t_cache = read_meta(cache)["summary"]["build_seconds"]
    else:
        log.info("[4/%d] no teacher cache (teacher_cache=false): stage 1 runs the teacher at every step", steps)
    log.info("[5/%d] EncRL stage 1 (CLIP + MSE) for %.1f min -> %s", steps, cfg.stage1_minutes, stage1_nemo)
    stage1_cfg = load_config("encrl", "encrl_clip_mse", [
        *stage1, f"exp_manager.exp_dir={out}/stage1", f"output_nemo={stage1_nemo}",
        f"+trainer.max_time={max_time(60 * cfg.stage1_minutes)}", "trainer.max_steps=-1",
    ])  # fmt: skip
    t_stage1 = t_cache + _timed(stage1_nemo, lambda: fit_encrl(stage1_cfg))

    log.info("[6/%d] stage 2: CTC finetuning at depths %s, %.1f min each", steps, list(cfg.depths), cfg.stage2_minutes)
    stage2 = {}
    for depth in cfg.depths:
        nemo = out / "stage2" / f"student_stage1_L{depth}.nemo"
        stage2_cfg = load_config("finetune", "ctc_finetune", [
            "init.from=stage1", f"init.stage1={stage1_nemo}", f"init.depths=[{depth}]", f"output_dir={out}/stage2",
            *students, f"exp_manager.exp_dir={out}/stage2", f"+trainer.max_time={max_time(60 * cfg.stage2_minutes)}",
            "trainer.max_epochs=-1", *cfg.finetune_overrides,
        ])  # fmt: skip
        stage2[depth] = _timed(nemo, lambda c=stage2_cfg: finetune_students(c))

    log.info("[7/%d] the same students from scratch, each on EncRL's total wall-clock (cache + stage 1 + its stage 2)",
             steps)  # fmt: skip
    scratch = {}
    for depth in cfg.depths:
        nemo = out / "scratch" / f"student_scratch_L{depth}.nemo"
        budget = (t_stage1 + stage2[depth]) / 60
        scratch_cfg = load_config("finetune", "ctc_finetune", [
            "init.from=scratch", f"init.teacher={teacher_path}", f"init.stage1={stage1_nemo}", "init.architecture=stage1",
            f"init.depths=[{depth}]", f"output_dir={out}/scratch", *students, f"exp_manager.exp_dir={out}/scratch",
            f"+trainer.max_time={max_time(60 * budget)}", "trainer.max_epochs=-1", *cfg.scratch_overrides,
        ])  # fmt: skip
        scratch[depth] = _timed(nemo, lambda c=scratch_cfg: finetune_students(c))

    for depth in cfg.depths:
        evaluate(f"encrl_L{depth}", out / "stage2" / f"student_stage1_L{depth}.nemo", "EncRL (stage 1 + 2)",
                 t_stage1 + stage2[depth])  # fmt: skip
        evaluate(f"scratch_L{depth}", out / "scratch" / f"student_scratch_L{depth}.nemo", "scratch (CTC)",
                 scratch[depth])  # fmt: skip
    return _finish(rows, out, start)


def results_table(rows: list[dict]) -> str:
    lines = ["| model | method | params | test WER | test CER | training wall-clock | RTF (transcribe, CPU) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        train = "shipped" if r["train_seconds"] is None else f"{r['train_seconds'] / 60:.1f} min"
        lines.append(f"| {r['name']} | {r['method']} | {r['parameters'] / 1e6:.2f}M | {100 * r['wer']:.1f}% | "
                     f"{100 * r['cer']:.1f}% | {train} | {r['rtf']:.4f} |")  # fmt: skip
    return "\n".join(lines)


def _finish(rows: list[dict], out: Path, start: float) -> dict:
    table = results_table(rows)
    (out / "results.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    print("\n" + table + "\n")
    print(f"demo finished in {(time.time() - start) / 60:.1f} min; table in {out / 'results.md'}", flush=True)
    return {"rows": rows, "seconds": time.time() - start}
