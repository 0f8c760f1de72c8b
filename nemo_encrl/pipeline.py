"""The README's main job (`nemo-encrl demo`): a small bench profile (conf/demo/demo.yaml) run end to end,
then one table of what came out: every student with its steps, compute, wall-clock and test WER beside
its scratch partner, and a plain verdict. The bench does the work (step budgets charged by measured
costs, settings-checked reuse, resume); this module only presents it.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from nemo_encrl.bench.report import pct, relative_to


def run_demo(cfg: DictConfig) -> dict:
    from nemo_encrl.bench import run_bench

    return write_demo_table(cfg, run_bench(cfg))


def _result(folder: Path) -> dict | None:
    path = folder / "result.json"
    return json.loads(path.read_text()) if path.exists() else None


def demo_rows(cfg: DictConfig) -> list[dict]:
    """Teacher, then per depth the EncRL student and its scratch partner (the main family, first seed)."""
    from nemo_encrl.bench.plan import plan_jobs, stage1_of
    from nemo_encrl.bench.run import choose_scratch

    out = Path(cfg.out_dir)
    chosen, _ = choose_scratch(cfg, out, record=False)
    rows = [{**_result(out / "teacher"), "name": "teacher", "method": "teacher (frozen)", "steps_text": "shipped",
             "minutes": None}]  # fmt: skip
    main = cfg.families[0]
    for job in plan_jobs(cfg, chosen):
        if job.kind == "stage1" or job.data != main.data or job.seed != int(main.seeds[0]) or job.repeat:
            continue
        if job.kind == "encrl" and job.recipe != main.recipe:
            continue
        r = _result(out / job.name)
        if r is None:
            continue
        minutes = (r["train_seconds"] or 0) / 60
        if job.kind == "encrl":
            s1 = _result(out / stage1_of(cfg, job).name) or {"steps": cfg.stage1_steps, "train_seconds": 0}
            r.update(method=f"EncRL ({job.recipe})", steps_text=f"{s1['steps']} (stage 1, shared) + {r['steps']}",
                     minutes=minutes, stage1_minutes=(s1["train_seconds"] or 0) / 60)  # fmt: skip
        else:
            r.update(method="scratch (CTC)", steps_text=str(r["steps"]), minutes=minutes)
        rows.append(r)
    return rows[:1] + sorted(rows[1:], key=lambda r: (-r["depth"], r["kind"] != "encrl"))


def demo_table(rows: list[dict]) -> str:
    lines = ["| model | method | params | training steps | training wall-clock | test WER | test CER | RTF (CPU, ONNX) |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        if r["minutes"] is None:
            wall = "-"
        elif "stage1_minutes" in r:
            wall = f"{r['stage1_minutes']:.1f} (stage 1, shared) + {r['minutes']:.1f} min"
        else:
            wall = f"{r['minutes']:.1f} min"
        lines.append(f"| {r['name']} | {r['method']} | {r['parameters'] / 1e6:.2f}M | {r['steps_text']} | {wall} | "
                     f"{pct(r['wer'])} | {pct(r['cer'])} | {r.get('rtf_onnx', r.get('rtf', 0)):.4f} |")  # fmt: skip
    return "\n".join(lines)


def verdict(rows: list[dict]) -> list[str]:
    """One line per depth: EncRL against its scratch partner at equal compute, said as measured."""
    by_depth: dict[int, dict] = {}
    for r in rows:
        if r.get("depth") is not None:
            by_depth.setdefault(int(r["depth"]), {})[r["kind"]] = r
    lines = []
    for depth, pair in sorted(by_depth.items(), reverse=True):
        if {"encrl", "scratch"} <= set(pair):
            e, s = pair["encrl"]["wer"], pair["scratch"]["wer"]
            lines.append(f"- {depth} layers: EncRL {pct(e)} vs scratch {pct(s)} test WER at equal compute "
                         f"(relative: {relative_to(e, s) or '-'}).")  # fmt: skip
    return lines


def write_demo_table(cfg: DictConfig, report: Path) -> dict:
    from nemo_encrl.config import load_config

    rows = demo_rows(cfg)
    out = Path(cfg.out_dir)
    bench_steps = load_config("bench", "cpu").steps
    plot = Path(cfg.report).parent / "plots" / f"{cfg.name}_dev_wer_vs_compute.png"
    text = "\n".join([
        f"# `{cfg.command}`: EncRL students against scratch at equal compute", "",
        f"Budget: {cfg.steps} CTC steps of {cfg.batch_duration} s of audio per student; the EncRL students give up the "
        "steps their share of the one stage 1 (and the teacher cache's build) costs, at step costs "
        + ("pinned in the profile (the same steps on every machine)" if cfg.cost.get("pinned") else
           f"measured on this machine ({out / 'cost.json'})")
        + ". Test split of the `" + str(cfg.eval_corpus) + "` corpus.", "",
        demo_table(rows), "", *verdict(rows), "",
        "At this small compute the comparison is a demonstration, not a result: the committed benchmark "
        "(docs/RESULTS.md, `nemo-encrl bench --profile cpu`) trains the same students for "
        f"{bench_steps} steps on the 3.9-h bench corpus, with scratch regularised or not as dev chooses.", "",
        f"Dev WER against compute: {plot}", f"Full report (costs, convergence, epoch-for-epoch, speed): {report}",
    ])  # fmt: skip
    (out / "results.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    print("\n" + text + "\n", flush=True)
    return {"rows": rows, "report": str(report), "results": str(out / "results.md")}
