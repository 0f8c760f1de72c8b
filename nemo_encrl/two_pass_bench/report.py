"""The two-pass distillation report: one row per model, the compute each took, and the paper's targets."""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig

ROWS = (("teacher", "teacher"), ("rnnt", "student after stage 1 (RNN-T KD)"),
        ("rescorer", "student after stage 2 (rescorer KD)"), ("deep", "student after stage 3 (deep finetuning)"),
        ("scratch", "same student from scratch, equal compute"))  # fmt: skip


def run_folder(key: str) -> str:
    """A row's run folder in out_dir: the stages' are kd_<stage>."""
    return key if key in ("teacher", "scratch") else f"kd_{key}"


def row_key(folder: str) -> str:
    """A run folder's row: kd_<stage> -> <stage>, every scratch config's folder -> scratch."""
    return "scratch" if folder.startswith("scratch") else folder.removeprefix("kd_")


def scratch_folders(cfg: DictConfig) -> dict[str, str]:
    """Each of `scratch_configs` -> its run folder: `scratch` for the first (the bench's one scratch run before
    it had a sweep, so its runs stay valid), `scratch-<name>` for the others."""
    names = list(cfg.get("scratch_configs") or {"recipe": None})
    return {name: "scratch" if i == 0 else f"scratch-{name}" for i, name in enumerate(names)}


def scratch_overrides(cfg: DictConfig, name: str) -> list[str]:
    """One scratch config's overrides, checked: a list of key=value strings."""
    overrides = (cfg.get("scratch_configs") or {}).get(name) or []
    if isinstance(overrides, str) or not all(isinstance(o, str) and "=" in o for o in overrides):
        raise ValueError(f"scratch_configs.{name}={overrides}: give a list of Hydra overrides, e.g. [model.optim.lr=0.5]")
    return list(overrides)


def choose_scratch(sweep: dict[str, dict | None]) -> str | None:
    """The scratch config with the lowest dev two-pass WER, once every config is scored (None before: a choice
    among some of them could change)."""
    if not sweep or any(r is None for r in sweep.values()):
        return None
    return min(sweep, key=lambda name: sweep[name]["dev_wer_two_pass"])


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _curve_points(points: list[dict]) -> list[dict]:
    """The validations worth a column: the first, the middle one and the last three."""
    points = [p for p in points if "val_wer" in p]
    n = len(points)
    return [points[i] for i in sorted({0, n // 2, n - 3, n - 2, n - 1} & set(range(n)))]


def training_lines(out_dir: Path, scratch: dict[str, str] | None = None) -> list[str]:
    """Each trained run's dev curve (greedy first-pass WER, and the attention loss that the rescorer stage
    trains) and wall-clock, from its curve.json: whether it was still improving when its budget ended.
    `scratch`: scratch config -> run folder, a row each when there are several."""
    lines = ["## Training on dev", "",
             "Greedy first-pass WER and attention (rescorer) loss on dev at chosen validations (step: value); "
             "wall-clock of the whole run on the machine above.", "",
             "| model | validations | dev first-pass WER | dev attention loss | wall-clock |", "|---|---|---|---|---|"]  # fmt: skip
    from nemo_encrl.bench.run import curve

    runs = [(label, run_folder(key)) for key, label in ROWS[1:-1]]
    scratch = scratch or {"recipe": "scratch"}
    label = ROWS[-1][1]
    runs += [(label if len(scratch) == 1 else f"{label}: `{name}`", folder) for name, folder in scratch.items()]
    for label, folder in runs:
        points = curve(out_dir / folder / "runs")
        if not points:
            continue
        shown = _curve_points(points)
        wer = ", ".join(f"{p['step']}: {_pct(p['val_wer'])}" for p in shown)
        attn = ", ".join(f"{p['step']}: {p['val_attn_loss']:.1f}" for p in shown if "val_attn_loss" in p) or "-"
        lines.append(f"| {label} | {sum('val_wer' in p for p in points)} | {wer} | {attn} | "
                     f"{points[-1]['wall_seconds'] / 60:.0f} min |")
    return lines


def _row(key: str, label: str, r: dict | None, teacher: dict | None, plan: dict) -> str:
    compute = "-" if key == "teacher" else f"{plan['units'][key]:.0f}"
    if r is None:  # not trained or not scored yet: its progress is in the training table
        steps = "-" if key == "teacher" else plan["steps"][key]
        return f"| {label} | - | - | - | {steps} | {compute} | not finished | - | - | - | - |"
    share = f"{r['parameters'] / teacher['parameters']:.0%}" if teacher else "-"
    return (f"| {label} | {r['parameters'] / 1e6:.2f}M | {share} | {r['nemo_mb']} MB | {r['steps'] or '-'} | {compute} | "
            f"{_pct(r['first_pass_greedy']['wer'])} | {_pct(r['two_pass']['wer'])} | {_pct(r['oracle']['wer'])} | "
            f"{r['rtf_first_pass']:.4f} | {r['rtf_two_pass']:.4f} |")  # fmt: skip


def _pending(results: dict, keys: tuple[str, ...]) -> str | None:
    missing = [dict(ROWS)[k] for k in keys if k not in results]
    return f"**pending** ({', '.join(missing)}: not finished)" if missing else None


def target_lines(results: dict) -> list[str]:
    """The paper's targets, each judged only once the runs it compares are finished."""
    wer = lambda k: results[k]["two_pass"]["wer"]  # noqa: E731
    lines = []
    pending = _pending(results, ("teacher", "deep"))
    ratio = results["deep"]["parameters"] / results["teacher"]["parameters"] if not pending else None
    lines.append(f"- Student ≤ 45% of the teacher's parameters: {pending or f'{ratio:.0%}, ' + _verdict(ratio <= 0.45)}.")
    lines.append("- Student two-pass WER within +10% relative of the teacher's: "
                 + (pending or f"{_pct(wer('deep'))} vs {_pct(wer('teacher'))}, {_verdict(wer('deep') <= 1.10 * wer('teacher'))}")
                 + ".")  # fmt: skip
    done = [s for s in ("rnnt", "rescorer", "deep") if s in results]
    helps = " / ".join(_pct(wer(s)) for s in done) or "-"
    for before, after, n in (("rnnt", "rescorer", 2), ("rescorer", "deep", 3)):
        if before in results and after in results and wer(after) > wer(before):
            helps += f"; stage {n} did not lower it"
    if len(done) < 3:
        helps += f"; {_pending(results, ('rnnt', 'rescorer', 'deep'))}"
    lines.append(f"- Each stage helps (two-pass test WER after stages 1 / 2 / 3): {helps}.")
    pending = _pending(results, ("deep", "scratch"))
    lines.append("- Student better than scratch at equal compute: "
                 + (pending or f"{_pct(wer('deep'))} vs {_pct(wer('scratch'))}, {_verdict(wer('deep') < wer('scratch'))}")
                 + ".")  # fmt: skip
    return lines


def sweep_lines(cfg: DictConfig, sweep: dict[str, dict | None], chosen: str | None, steps: int) -> list[str]:
    """The scratch configs side by side, each at the full scratch budget; the baseline is chosen on dev."""
    folders = scratch_folders(cfg)
    lines = ["## Scratch baseline: configs chosen on dev", "",
             f"Each config trains the scratch student for the full {steps} steps (the sweep cost {len(sweep)} x that); "
             "the one with the lowest dev two-pass WER is the baseline above.", "",
             "| config | overrides | run folder | dev two-pass WER | test first-pass WER | test two-pass WER | chosen |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in sweep.items():
        overrides = ", ".join(f"`{o}`" for o in scratch_overrides(cfg, name)) or "none (the recipe as is)"
        scores = (f"{_pct(r['dev_wer_two_pass'])} | {_pct(r['first_pass_greedy']['wer'])} | {_pct(r['two_pass']['wer'])}"
                  if r else "not finished | - | -")  # fmt: skip
        lines.append(f"| {name} | {overrides} | {folders[name]} | {scores} | {'yes' if name == chosen else ''} |")
    return lines + [""]


def write_report(cfg: DictConfig, costs: dict, plan: dict, results: dict, sweep: dict[str, dict | None]) -> Path:
    """`results`: result.json by row key (the stages', the teacher's); `sweep`: each scratch config's result.json
    or None. A run missing (not finished) gets a row saying so, and the targets that need it are pending."""
    chosen = choose_scratch(sweep)
    results = {**results, **({"scratch": sweep[chosen]} if chosen else {})}
    rows = list(ROWS)
    if len(sweep) > 1:
        rows[-1] = ("scratch", f"{ROWS[-1][1]} ({f'`{chosen}`, chosen on dev' if chosen else 'best of the configs below'})")
    finished = all(key in results for key, _ in ROWS)
    lines = [
        f"# Two-pass distillation: {cfg.name} profile" + ("" if finished else " (not finished: partial report)"),
        "",
        f"Generated by `{cfg.get('command') or 'nemo-encrl two-pass-bench'}` on {time.strftime('%Y-%m-%d %H:%M')}; "
        f"train `{cfg.train_corpus}`, dev/test `{cfg.eval_corpus}` (rescoring weight and length bonus tuned on dev for "
        f"every model). Costs on {costs['machine']}.",
        "",
        "| model | parameters | of teacher | .nemo | steps | compute (scratch steps) | first pass WER | two-pass WER | "
        "N-best oracle | RTF first pass | RTF two-pass |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *(_row(key, label, results.get(key), results.get("teacher"), plan) for key, label in rows),
        "",
        "Step costs (ms per step, same batches): "
        + ", ".join(f"{k} {v}" for k, v in costs["ms"].items())
        + f"; the scratch student's {plan['steps']['scratch']} steps equal the three stages' compute "
        "(the rescorer stage's one-time N-best decoding of the train set included).",
        "",
        "## Targets",
        "",
        *target_lines(results),
        "",
        *(sweep_lines(cfg, sweep, chosen, plan["steps"]["scratch"]) if len(sweep) > 1 else []),
        *training_lines(Path(cfg.out_dir), scratch_folders(cfg)),
    ]
    out = Path(cfg.report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"[two-pass bench] report: {out}", flush=True)
    return out
