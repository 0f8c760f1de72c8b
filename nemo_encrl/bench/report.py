"""The bench report (markdown + plots), regenerated from the run folders alone: a summary table first,
then the scratch sweep, the compute needed to reach scratch's dev WER, convergence, a few
epoch-for-epoch points, size and speed, and the targets."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from omegaconf import DictConfig

from nemo_encrl.bench import accounting as acc
from nemo_encrl.bench.budget import Costs, stage1_step_cost, stage1_units, student_step_cost
from nemo_encrl.bench.plan import stage1_losses, stage2_kl
from nemo_encrl.bench.plots import write_plots
from nemo_encrl.bench.run import curve, dev_score, last_dev_wers

pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731


def load_results(cfg: DictConfig, jobs) -> tuple[dict[str, dict], dict[str, dict]]:
    """Finished students and scratch runs by name: (the bench's, the repeats of some of them)."""
    out = Path(cfg.out_dir)
    results, repeats = {}, {}
    for job in jobs:
        path = out / job.name / "result.json"
        if job.kind != "stage1" and path.exists():
            (repeats if job.repeat else results)[job.name] = {**json.loads(path.read_text()), "curve": curve(out / job.name)}
    return results, repeats


def repeat_table(results: dict, repeats: dict) -> tuple[list[str], float | None]:
    """Each repeated run against the original (identical settings, its own folder); the largest gap."""
    lines = ["| run | test WER | repeated | difference |", "|---|---|---|---|"]
    gaps = []
    for name, r in repeats.items():
        original = results.get(name.rsplit("_r", 1)[0])
        if original:
            gaps.append(abs(r["wer"] - original["wer"]))
            lines.append(f"| {original['name']} | {pct(original['wer'])} | {pct(r['wer'])} | {100 * gaps[-1]:.1f} points |")
    return lines, max(gaps) if gaps else None


def _groups(results: dict) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in results.values():
        groups.setdefault((r["data"], r["depth"], r["method"]), []).append(r)
    return groups


def _mean_spread(values: list[float]) -> str:
    if len(values) == 1:
        return pct(values[0])
    return f"{pct(statistics.mean(values))} ± {100 * statistics.stdev(values):.1f} ({pct(min(values))}-{pct(max(values))})"


def _partner(r: dict, results: dict, chosen: str) -> dict | None:
    if r["kind"] != "encrl":
        return None
    return results.get(f"scratch-{chosen}_{r['data']}_L{r['depth']}_s{r['seed']}")


def summary_table(cfg, costs: Costs, results: dict, hours: dict, chosen: str) -> list[str]:
    base = f"scratch-{chosen}"
    lines = ["| data | depth | method | params | seeds | test WER (mean ± sd, min-max) | vs chosen scratch | "
             "compute per student: stage 1 shared | stage 1 whole |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    groups = _groups(results)
    for (data, depth, method), group in sorted(groups.items(), key=lambda kv: (kv[0][0], -kv[0][1], kv[0][2] != base, kv[0][2])):
        wers = [r["wer"] for r in group]
        ref = groups.get((data, depth, base))
        rel = "-"
        if ref and method != base:
            rel = relative_to(statistics.mean(wers), statistics.mean(r["wer"] for r in ref)) or "-"
        units, whole = (statistics.mean(acc.total_units(cfg, costs, r, hours[data], whole=w) for r in group)
                        for w in (False, True))
        label = f"**{method}** (chosen)" if method == base else method
        lines.append(f"| {data} | L{depth} | {label} | {group[0]['parameters'] / 1e6:.2f}M | {len(group)} | "
                     f"{_mean_spread(wers)} | {rel} | {units:.0f} units ({_hours(costs, units)}) | "
                     f"{f'{whole:.0f} units' if whole != units else '-'} |")  # fmt: skip
    return lines


def relative_to(wer: float, ref: float) -> str | None:
    """`wer` against `ref` in relative terms, e.g. '14.7% lower' (None when `ref` is 0)."""
    if ref <= 0:
        return None
    change = (wer - ref) / ref
    return f"{100 * abs(change):.1f}% {'lower' if change < 0 else 'higher' if change > 0 else 'equal'}"


def _hours(costs: Costs, units: float) -> str:
    return f"{units * costs.unit_ms / 3.6e6:.2f} h" if costs.unit_ms else "-"


def sweep_table(cfg, costs: Costs, results: dict, chosen: str) -> list[str]:
    at = cfg.scratch.sweep_at
    n, units = len(cfg.scratch.configs), int(cfg.steps) * costs.ctc[int(at.depth)]
    lines = [f"Chosen on dev at data `{at.data}`, depth {at.depth}, seed {at.seed}: the lowest mean dev WER over the "
             f"last three validations. The sweep cost {n} x {cfg.steps} CTC steps ({n * units:.0f} units, "
             f"{_hours(costs, n * units)}); the winner's run is also the seed-{at.seed} scratch partner at L{at.depth}, "
             f"so {n - 1} x {cfg.steps} steps ({(n - 1) * units:.0f} units) of it are spent on choosing.", "",
             "| config | lr | regularisation | last 3 dev WERs | mean | test WER | chosen |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, config in cfg.scratch.configs.items():
        r = results.get(f"scratch-{name}_{at.data}_L{at.depth}_s{at.seed}")
        if r is None:
            continue
        after = config.get("regularize_after")
        reg = "off" if after is None else f"on after {after} steps"
        wers, score = last_dev_wers(r["curve"]), dev_score(r["curve"])
        lines.append(f"| {name} | {config.lr} | {reg} | {', '.join(pct(w) for w in wers)} | "
                     f"{'-' if score is None else pct(score)} | {pct(r['wer'])} | {'yes' if name == chosen else ''} |")  # fmt: skip
    return lines


def _reach(cfg, costs: Costs, r: dict, results: dict, hours: dict, chosen: str) -> dict | None:
    """The student against its scratch partner's best dev WER: the target, scratch's total compute, the
    student's compute when it first got there (stage 1 shared / whole; None: never), and at its first
    validation (`first`: no reading can come earlier; its stage-1 share is spent before it). None without
    a partner."""
    scratch = _partner(r, results, chosen)
    points = [p["val_wer"] for p in (scratch or {}).get("curve", []) if "val_wer" in p]
    shared = acc.compute_curve(cfg, costs, r, hours[r["data"]])
    if not scratch or not points or not shared:
        return None
    target, h = min(points), hours[r["data"]]
    return {"target": target, "full": acc.total_units(cfg, costs, scratch, h), "first": shared[0][0],
            "shared": acc.units_to_reach(shared, target),
            "whole": acc.units_to_reach(acc.compute_curve(cfg, costs, r, h, whole=True), target)}  # fmt: skip


def reach_table(cfg, costs: Costs, results: dict, hours: dict, chosen: str) -> list[str]:
    lines = ["| student | scratch's best dev WER | scratch compute | EncRL compute to reach it: stage 1 shared | "
             "stage 1 whole | fraction (shared / whole) | earliest reading (shared) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in results.items():
        if not (v := _reach(cfg, costs, r, results, hours, chosen)):
            continue
        target, full, shared, whole = v["target"], v["full"], v["shared"], v["whole"]
        frac = " / ".join(f"{u / full:.2f}" if u else "not reached" for u in (shared, whole))
        lines.append(f"| {name} | {pct(target)} | {full:.0f} | {f'{shared:.0f}' if shared else 'not reached'} | "
                     f"{f'{whole:.0f}' if whole else 'not reached'} | {frac} | {v['first'] / full:.2f} |")  # fmt: skip
    return lines


def trend(wers: list[float]) -> str:
    """The last three dev WERs read as a plateau or not: the change from the first to the last of them."""
    if len(wers) < 3:
        return "-"
    change = 100 * (wers[-1] - wers[0])
    word = "falling" if change <= -1 else "rising" if change >= 1 else "flat"
    return f"{change:+.1f} points, {word}"


def convergence_table(results: dict) -> list[str]:
    lines = ["| run | steps | dev WER at the last three validations | change over them | training wall-clock |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, r in results.items():
        wers, seconds = last_dev_wers(r["curve"]), r.get("train_seconds")
        lines.append(f"| {name} | {r['steps']} | {', '.join(pct(w) for w in wers)} | {trend(wers)} | "
                     f"{f'{seconds / 60:.0f} min' if seconds else '-'} |")  # fmt: skip
    return lines


def recipe_choice(cfg, jobs, results: dict) -> tuple[str | None, list[str]]:
    """The default recipe, chosen on dev: the students of every recipe on the main family's data, at the
    depths every recipe trained; a recipe's score is the mean over those students of their mean dev WER at
    the last three validations. Recipes within one standard error of the best score (over the best recipe's
    students) are not told apart by dev: of those, the first in `recipes` wins (the profile lists them
    simplest first; the one-standard-error rule of Breiman et al., 1984). Test WER beside it, never used to
    choose. None until all have finished."""
    data = cfg.families[0].data
    planned = [j for j in jobs if j.kind == "encrl" and not j.repeat and j.data == data]
    recipes = list(dict.fromkeys(j.recipe for j in planned))
    depths = [d for d in dict.fromkeys(j.depth for j in planned)
              if all(any(j.depth == d and j.recipe == rec for j in planned) for rec in recipes)]
    runs = {rec: [results[j.name] for j in planned if j.recipe == rec and j.depth in depths and j.name in results]
            for rec in recipes}  # fmt: skip
    score_of = {r["name"]: dev_score(r["curve"]) for rs in runs.values() for r in rs}  # None: no validation yet
    devs = {rec: [score_of[r["name"]] for r in rs if score_of[r["name"]] is not None] for rec, rs in runs.items()}
    scores = {rec: statistics.mean(ds) for rec, ds in devs.items() if ds}
    best = min(scores, key=scores.get) if scores else None
    se = statistics.stdev(devs[best]) / len(devs[best]) ** 0.5 if best and len(devs[best]) > 1 else 0.0
    tied = [rec for rec in cfg.recipes if rec in scores and scores[rec] <= scores[best] + se]
    leader = tied[0] if tied else None
    done = all(j.name in results for j in planned if j.depth in depths)
    why = (f" Lowest dev WER: {best} ({pct(scores[best])}); within one standard error of it ({100 * se:.1f} points, "
           f"over its {len(devs[best])} students) and so not told apart by dev: "
           f"{', '.join(f'{rec} ({pct(scores[rec])})' for rec in tied)}; the first of these in `recipes` (the simplest) "
           "is chosen." if leader and leader != best else "")  # fmt: skip
    lines = [(f"Chosen on dev on `{data}` at depths {depths}: **{leader}**.{why}" if done and leader else
              f"Not all of these students have finished: no choice yet ({leader or 'none'} leads so far)."), "",
             "| recipe | stage-1 losses | stage-2 KL | depth | seeds | dev WER (mean of the last three) | test WER | chosen |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for rec in recipes:
        losses = ", ".join(f"{k} {v}" for k, v in stage1_losses(cfg, rec).items()) or "the config's"
        for depth in depths:
            at = [r for r in runs[rec] if r["depth"] == depth]
            dev = [score_of[r["name"]] for r in at if score_of[r["name"]] is not None]
            if at:
                lines.append(f"| {rec} | {losses} | {stage2_kl(cfg, rec) or '-'} | L{depth} | {len(at)} | "
                             f"{_mean_spread(dev) if dev else '-'} | {_mean_spread([r['wer'] for r in at])} | "
                             f"{'yes' if done and rec == leader else ''} |")  # fmt: skip
    return (leader if done else None), lines


def epoch_points(results: dict, hours: dict, chosen: str) -> list[str]:
    """Paper's accounting at three points of each student's stage 2 (first, middle, last validation): its
    epochs and dev WER, and the epochs its scratch partner needed for the same dev WER."""
    lines = ["| student | first validation | middle | last |", "|---|---|---|---|"]
    for name, r in results.items():
        scratch = _partner(r, results, chosen)
        if not scratch or not r["curve"]:
            continue
        mine = list(zip(acc.epochs(r, hours[r["data"]]), [p["val_wer"] for p in r["curve"] if "val_wer" in p]))
        if not mine:
            continue
        theirs = list(zip(acc.epochs(scratch, hours[r["data"]]), [p["val_wer"] for p in scratch["curve"] if "val_wer" in p]))
        cells = []
        for e, w in [mine[0], mine[len(mine) // 2], mine[-1]] if mine else []:
            s = next((se for se, sw in theirs if sw <= w), None)
            cells.append(f"{e:.1f} ep: {pct(w)} (scratch: {f'{s:.1f} ep' if s is not None else 'never'})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _step_kind(cfg, costs: Costs, r: dict) -> tuple[str, float]:
    """The kind of training step a finished run took, and its measured cost in units."""
    if r["kind"] == "stage1":
        cached = cfg.data[r["data"]].get("teacher_cache")
        return f"stage 1, {'teacher cache' if cached else 'teacher online'}", stage1_step_cost(cfg, costs, r["data"])
    kl = stage2_kl(cfg, r.get("recipe"))
    return (f"{'CTC + KL' if kl else 'CTC'} L{r['depth']}", student_step_cost(cfg, costs, r.get("recipe"), r["depth"]))


def wallclock_table(cfg, costs: Costs, jobs) -> tuple[list[str], float]:
    """Seconds a training step took, per kind of step, against the measured step costs the budgets use;
    and the bench's training hours in all. Wall-clock includes validation and the other worker's load."""
    out, kinds, total = Path(cfg.out_dir), {}, 0.0
    for job in jobs:
        path = out / job.name / "result.json"
        if path.exists() and (r := json.loads(path.read_text())).get("train_seconds"):
            total += r["train_seconds"]
            kind, cost = _step_kind(cfg, costs, r)
            kinds.setdefault(kind, (cost, []))[1].append(r["train_seconds"] / r["steps"])
    unit = statistics.mean(kinds[f"CTC L{cfg.student.n_layers}"][1]) if f"CTC L{cfg.student.n_layers}" in kinds else None
    lines = ["| step | runs | seconds a step (training wall-clock / steps) | relative to a full-depth CTC step | "
             "measured cost (budgets) |", "|---|---|---|---|---|"]  # fmt: skip
    for kind, (cost, per_step) in sorted(kinds.items()):
        sec = statistics.mean(per_step)
        lines.append(f"| {kind} | {len(per_step)} | {sec:.2f} | {f'{sec / unit:.2f}' if unit else '-'} | {cost:.2f} |")
    return lines, total / 3600


def speed_table(cfg, teacher: dict, results: dict) -> list[str]:
    """Models not timed yet (trained beside other jobs; the bench times them at its end) show '-'."""
    lines = [f"Real-time factor = compute seconds per audio second, batch 1, {cfg.speed.threads} threads, "
             f"{cfg.speed.utterances} test utterances, fastest of {cfg.speed.repeats} passes; each architecture timed "
             "in a fresh process beside the teacher, the ratio from that pair.", "",
             "| model | params | .nemo MB | RTF PyTorch | RTF ONNX Runtime | ONNX RTF vs teacher |", "|---|---|---|---|---|---|"]
    for name, r in {"teacher": teacher, **results}.items():
        timed = "rtf_onnx" in r
        ratio = ("1" if name == "teacher" else f"{r['rtf_onnx'] / r['rtf_onnx_teacher']:.2f}") if timed else "-"
        speeds = f"{r['rtf_pytorch']:.4f} | {r['rtf_onnx']:.4f}" if timed else "- | -"
        lines.append(f"| {name} | {r['parameters'] / 1e6:.2f}M | {r['nemo_mb']} | {speeds} | {ratio} |")
    return lines


def targets(cfg, costs: Costs, results: dict, hours: dict, chosen: str, recipe: str | None = None) -> list[str]:
    """The issue's targets for the main comparison's recipe and, when dev chose another (`recipe`), for that
    one too, wherever it has students (the default recipe is the one the targets are about); then whether
    a recipe was chosen on dev (`recipe`: None until all recipes have finished)."""
    main = cfg.families[0]
    recipes = list(dict.fromkeys(r for r in (main.recipe, recipe) if r))
    groups = _groups(results)
    lines = ["| target | measured | reached |", "|---|---|---|"]
    for rec in recipes:
        for data in dict.fromkeys(f.data for f in cfg.families):
            for depth in cfg.depths:
                enc, scr = groups.get((data, int(depth), rec)), groups.get((data, int(depth), f"scratch-{chosen}"))
                if not enc or not scr:
                    continue
                e, s = statistics.mean(r["wer"] for r in enc), statistics.mean(r["wer"] for r in scr)
                rel = (s - e) / s if s > 0 else 0.0
                need = 0.25 if data == main.data else 0.0
                what = ">= 25% relative below the chosen scratch" if need else "better than the chosen scratch"
                lines.append(f"| {rec} L{depth} on `{data}`: test WER {what} | {100 * rel:+.1f}% "
                             f"({pct(e)} vs {pct(s)}) | {'yes' if rel >= need and rel > 0 else 'no'} |")  # fmt: skip
    for name, r in results.items():
        if r["method"] not in recipes or r["data"] != main.data or not (v := _reach(cfg, costs, r, results, hours, chosen)):
            continue
        frac = v["shared"] / v["full"] if v["shared"] else None
        lines.append(f"| {name}: reaches scratch's best dev WER within <= 1/5 of scratch's compute | "
                     f"{f'{frac:.2f}' if frac else 'not reached'} (its first dev reading comes at "
                     f"{v['first'] / v['full']:.2f}) | {'yes' if frac and frac <= 0.2 else 'no'} |")  # fmt: skip
    lines.append(f"| the default recipe is chosen by measurement (dev WER) | "
                 + (f"{recipe} chosen" + (f" (the main comparison was planned with {main.recipe}: both have rows above)"
                                          if recipe != main.recipe else "") if recipe else "not all recipes finished")
                 + f" | {'yes' if recipe else '-'} |")  # fmt: skip
    return lines


def write_report(cfg: DictConfig, jobs, costs: Costs, hours: dict, chosen: str, provisional: bool = False) -> Path:
    """`chosen`: the scratch configuration the sweep chose; `provisional`: the sweep has not finished."""
    out = Path(cfg.out_dir)
    results, repeats = load_results(cfg, jobs)
    teacher = json.loads((out / "teacher" / "result.json").read_text())
    stage2 = {}  # stage-2 steps per (recipe, data, depth), from the recorded settings
    for job in jobs:
        if job.kind == "encrl" and not job.repeat and (out / job.name / "settings.json").exists():
            stage2[(job.recipe, job.data, job.depth)] = json.loads((out / job.name / "settings.json").read_text())["steps"]
    # the data settings some job trains on (a profile may define more)
    data_lines = [f"`{k}`: corpus `{d.corpus}` train split, {hours[k]:.1f} h"
                  + (", stage 1 reads a teacher cache (its build charged to each family)" if d.get("teacher_cache")
                     else ", stage 1 runs the teacher") for k, d in cfg.data.items()
                  if any(job.data == k for job in jobs)]  # fmt: skip
    md = [f"# Benchmark `{cfg.name}`: EncRL students against a scratch baseline chosen on dev, at equal compute", "",
          *([f"**{cfg.caveat}**", ""] if cfg.get("caveat") else []),
          f"- Command: `{cfg.command}`", f"- Date: {time.strftime('%Y-%m-%d')}; runs finished: {len(results)} students.",
          f"- Teacher `{cfg.teacher}`: {teacher['parameters'] / 1e6:.2f}M parameters, test WER {pct(teacher['wer'])}.",
          "- Data settings: " + "; ".join(data_lines) + f". Dev and test: corpus `{cfg.eval_corpus}`.",
          f"- Students: {dict(cfg.student)} cut to depths {list(cfg.depths)}; one stage 1 per family.",
          f"- Budget: {cfg.steps} CTC steps (batches of up to {cfg.batch_duration} s of audio) per student. A family's stage 1 "
          f"({cfg.stage1_steps} steps) is charged to its students in proportion to their step costs; their stage 2 "
          "gets the rest: " + (", ".join(f"{r} `{d}` L{k}: {v}" for (r, d, k), v in stage2.items()) or "none started yet")
          + ". A family trained at fewer depths (the CLIP-weight sweep) is charged as if it had them all, its stage 1 "
          "serving those depths, so recipes compare at equal stage-2 steps; 'stage 1 whole' below charges it all.",
          f"- Compute unit: one CTC step of the full-depth student ({costs.unit_ms} ms here). Step costs ({costs.source}): "
          + ", ".join(f"CTC L{d} {c:.2f}" for d, c in costs.ctc.items())
          + f", stage 1 online {costs.stage1_online:.2f}, stage 1 cached {costs.stage1_cached:.2f}, teacher pass over one "
          f"hour of audio {costs.teacher_per_audio_hour:.0f}; family stage 1: "
          + ", ".join(f"`{k}` {stage1_units(cfg, costs, k, hours[k]):.0f} units" for k in dict.fromkeys(f.data for f in cfg.families))
          + ".", f"- Dev WER every {cfg.validate_every} steps. Wall-clock is reported, not budgeted.", ""]  # fmt: skip
    md += ["## Summary: test WER at equal compute", ""] + summary_table(cfg, costs, results, hours, chosen)
    recipe, recipe_lines = recipe_choice(cfg, jobs, results)
    md += ["", "## Default recipe: chosen on dev", ""] + recipe_lines
    md += ["", "## Scratch baseline: learning rate and regularisation, chosen on dev", ""]
    if provisional:
        md += [f"**The sweep has not finished: `{chosen}` is only the provisional choice.**", ""]
    md += sweep_table(cfg, costs, results, chosen)
    md += ["", "## Compute to reach scratch's best dev WER", "",
           "Stage 1 shared: the student carries its share of the family's stage 1 (how the budgets are set). Stage 1 "
           "whole: the student carries all of it, as if it were the family's only student.", ""]
    md += reach_table(cfg, costs, results, hours, chosen)
    md += ["", "## Convergence", ""] + convergence_table(results)
    md += ["", "## Epoch for epoch (paper's accounting: stage-2 epochs only)", "",
           "Epochs = training audio seen / the train split's audio. In brackets: the epochs the scratch partner (same "
           "data, depth and seed) needed for the same dev WER.", ""]
    md += epoch_points(results, hours, chosen)
    md += ["", "## Size and speed", ""] + speed_table(cfg, teacher, results)
    wall, hours_all = wallclock_table(cfg, costs, jobs)
    md += ["", "## Wall-clock (reported, never budgeted)", "",
           f"The runs' training wall-clock adds up to {hours_all:.1f} h ({cfg.get('workers', 1)} jobs ran at a time). Per kind of "
           "step, against the step costs the budgets use (measured once, on their own, before training; the "
           "wall-clock includes validation and sharing the CPU with the other jobs):", "", *wall]  # fmt: skip
    lines, gap = repeat_table(results, repeats)
    if repeats:
        md += ["", "## The same command twice", "", "The `repeat:` runs: identical settings (seed, steps, data), trained "
               "again in their own folders.", "", *lines]  # fmt: skip
    md += ["", "## Targets", ""] + targets(cfg, costs, results, hours, chosen, recipe)
    if gap is not None:
        md.append(f"| same command twice: test WERs within 1 point | largest gap {100 * gap:.1f} points | "
                  f"{'yes' if gap <= 0.01 else 'no'} |")
    plots = write_plots(cfg, costs, results, teacher, hours, Path(cfg.report).parent / "plots")
    md += ["", "## Plots", "", *[f"![{p.stem}](plots/{p.name})" for p in plots], ""]
    if cfg.get("notes") and Path(cfg.notes).exists():  # hand-written reading of these numbers, kept apart
        md += [f"## Notes (written after the run, from `{cfg.notes}`)", "", Path(cfg.notes).read_text().strip(), ""]
    report = Path(cfg.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(md) + "\n")
    print(f"report: {report}", flush=True)
    return report
