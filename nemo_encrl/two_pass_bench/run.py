"""Planning, step costs, training and scoring of the two-pass distillation benchmark.

Budgets are optimizer steps. Each stage's step is charged at its measured cost relative to a step of the
scratch student (same batches, one process; the rescorer stage's one-time N-best decoding of the train set
is charged too), and the scratch student gets the steps that make its compute equal to the three stages'.
The scratch student is trained under each of `scratch_configs` (learning rate, regularisation onset, ...)
at that budget, and the one with the lowest dev two-pass WER is the baseline, as the EncRL bench chooses its.
Every run resumes from its last checkpoint and is reused only under the settings it was made with.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from nemo_encrl.bench.run import corpus_dir
from nemo_encrl.config import load_config
from nemo_encrl.models.two_pass_kd import STAGES
from nemo_encrl.two_pass_bench.report import row_key, scratch_folders, scratch_overrides


def _data(cfg: DictConfig, folder: Path, steps: int) -> list[str]:
    corpus, evals = corpus_dir(cfg.train_corpus), corpus_dir(cfg.eval_corpus)
    return [f"model.train_ds.manifest_filepath={corpus}/train_manifest.json",
            f"model.validation_ds.manifest_filepath={evals}/dev_manifest.json",
            f"model.tokenizer.dir={Path(cfg.out_dir) / 'tokenizer'}", f"exp_manager.exp_dir={folder / 'runs'}",
            f"output_nemo={folder / 'model.nemo'}", f"trainer.max_steps={steps}",
            f"trainer.val_check_interval={min(int(cfg.validate_every), steps)}", "trainer.check_val_every_n_epoch=null",
            *cfg.get("overrides", [])]  # fmt: skip


def stage_config(cfg: DictConfig, stage: str, steps: int, folder: Path, init: Path | None, nbest: bool = True) -> DictConfig:
    """`nbest` lives in the rescorer run's own folder: a retrained stage 1 never meets an old N-best."""
    return load_config("two_pass", f"kd_{stage}", [
        f"model.kd.teacher.path={cfg.teacher}", f"model.kd.init_from={init}" if init else "model.kd.init_from=null",
        f"model.kd.nbest={folder / 'nbest_train.jsonl'}" if stage == "rescorer" and nbest else "model.kd.nbest=null",
        *_data(cfg, folder, steps), *cfg.get("student_overrides", []),
    ])  # fmt: skip


def scratch_config(cfg: DictConfig, steps: int, folder: Path, config: list[str] = ()) -> DictConfig:
    """The student's architecture (kd_rnnt's) trained with the two-pass recipe alone: no teacher, no init;
    `config`: one of `scratch_configs`' override lists."""
    run = load_config("two_pass", "kd_rnnt", [*_data(cfg, folder, steps), *cfg.get("student_overrides", []),
                                              *cfg.get("scratch_overrides", []), *config])  # fmt: skip
    with open_dict(run):
        run.tokenizer_from = str(cfg.teacher)
        run.model.pop("kd")
    return run


def measure_costs(cfg: DictConfig) -> dict:
    """ms per step of each stage and of the scratch student on the same batches, and of N-best decoding."""
    from nemo_encrl.bench.cost import machine, timed_steps, to_device
    from nemo_encrl.models.two_pass import TwoPassModel
    from nemo_encrl.models.two_pass_decoding import nbest_from_decoding
    from nemo_encrl.models.two_pass_kd import TwoPassKDModel
    from nemo_encrl.training import copy_tokenizer

    probe = Path(cfg.out_dir) / "cost_probe"
    scratch = scratch_config(cfg, 10, probe)
    copy_tokenizer(scratch)
    with open_dict(scratch):
        scratch.model.train_ds.num_workers = 0
    models = {"scratch": TwoPassModel(scratch.model)}
    for stage in STAGES:  # the rescorer's N-best store does not exist yet: its probe gets stand-in lists (below)
        models[stage] = TwoPassKDModel(stage_config(cfg, stage, 10, probe, None, nbest=False).model)
    n, warmup = int(cfg.cost.steps), int(cfg.cost.warmup)
    batches = []
    for batch in models["scratch"]._train_dl:
        batches.append(batch)
        if len(batches) == n + warmup:
            break
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # where the bench's training runs
    models = {k: m.to(device) for k, m in models.items()}
    batches = [to_device(b, device) for b in batches]

    def stepper(model, losses):
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

        def step(batch):
            model.train()  # the N-best probe below puts the scratch model in eval mode
            opt.zero_grad()
            losses(model, batch).backward()
            opt.step()

        return step

    def scratch_loss(model, batch):
        enc, enc_len = model.forward(input_signal=batch[0], input_signal_length=batch[1])
        rnnt, attn = model._losses(enc, enc_len, batch[2], batch[3])
        return rnnt + model.attn_loss_weight * attn

    def kd_loss(model, batch):
        return sum(model.kd_losses(batch).values())

    def nbest(batch, model=models["scratch"]):
        model.eval()
        with torch.no_grad():
            enc, enc_len = model.forward(input_signal=batch[0], input_signal_length=batch[1])
        nbest_from_decoding(model.nbest_decoding, enc, enc_len, model.nbest_size)

    size = models["rescorer"].nbest_size

    def with_nbest(step):  # N copies of each transcript stand in for its N-best: the same attention work
        return lambda b: step((*b[:4], [[t[: int(n)].tolist()] * size for t, n in zip(b[2], b[3])]))

    kinds = {"scratch": stepper(models["scratch"], scratch_loss), "rnnt": stepper(models["rnnt"], kd_loss),
             "rescorer": with_nbest(stepper(models["rescorer"], kd_loss)), "deep": stepper(models["deep"], kd_loss),
             "nbest_decode": nbest}  # fmt: skip
    ms = {k: 1000 * min(timed_steps(fn, batches, warmup) for _ in range(2)) / n for k, fn in kinds.items()}
    audio = sum(float(b[1].sum()) for b in batches[warmup:]) / models["scratch"].cfg.sample_rate / n
    return {"ms": {k: round(v, 1) for k, v in ms.items()}, "audio_seconds_per_batch": round(audio, 1), "machine": machine()}


def budgets(cfg: DictConfig, costs: dict) -> dict:
    """Steps per run and compute in scratch-step units; the scratch student's steps equal the stages' compute."""
    from nemo_encrl.data.manifest import manifest_hours

    ms = costs["ms"]
    hours = manifest_hours(corpus_dir(cfg.train_corpus) / "train_manifest.json")
    decode_batches = math.ceil(hours * 3600 / costs["audio_seconds_per_batch"])
    units = {stage: int(cfg.steps[stage]) * ms[stage] / ms["scratch"] for stage in STAGES}
    units["rescorer"] += decode_batches * ms["nbest_decode"] / ms["scratch"]  # the N-best store, decoded once
    total = sum(units.values())
    return {"steps": {**{s: int(cfg.steps[s]) for s in STAGES}, "scratch": round(total)},
            "units": {**{s: round(u, 1) for s, u in units.items()}, "scratch": round(total)}}  # fmt: skip


def _settings(cfg: DictConfig, name: str, steps: int, init: str | None, run_cfg: DictConfig | None) -> dict:
    """What a run's numbers depend on: the teacher's and the initialising model's bytes, the whole composed
    training config (conf/two_pass/*.yaml as read now), data and evaluation."""
    import hashlib

    from nemo_encrl.bench.settings import file_digest

    config = hashlib.sha1(OmegaConf.to_yaml(run_cfg, resolve=True).encode()).hexdigest()[:12] if run_cfg else None
    return {"run": name, "steps": steps, "teacher": file_digest(cfg.teacher), "init": file_digest(init) if init else None,
            "config": config, "train_corpus": cfg.train_corpus, "eval_corpus": cfg.eval_corpus,
            "validate_every": int(cfg.validate_every)}  # fmt: skip


def score(cfg: DictConfig, nemo: str, folder: Path) -> dict:
    """Rescoring tuned on dev, then every pass on test; parameters, .nemo size, decoding speed."""
    from nemo_encrl.models.two_pass import TwoPassModel
    from nemo_encrl.two_pass_eval import decode_manifest, tune_rescoring, two_pass_report

    evals = corpus_dir(cfg.eval_corpus)
    model = TwoPassModel.restore_from(nemo, map_location="cpu")
    choice = tune_rescoring(decode_manifest(model, evals / "dev_manifest.json", progress=False))
    test = decode_manifest(model, evals / "test_manifest.json", progress=False)
    report = two_pass_report(test, choice["weight"], choice["length_bonus"])
    report.update(parameters=sum(p.numel() for p in model.parameters()), nemo_mb=round(Path(nemo).stat().st_size / 1e6, 2),
                  dev_wer_two_pass=choice["dev_wer"])  # fmt: skip
    return report


def _runs(cfg: DictConfig, plan: dict) -> dict[str, tuple]:
    """The trained runs by folder name, in the order they depend on each other (each stage starts from the
    previous stage's .nemo): (steps, init .nemo or None, config(folder), train(folder) -> .nemo)."""
    from nemo_encrl.training import fit_two_pass, fit_two_pass_kd

    runs, init = {}, None
    for stage in STAGES:
        steps = plan["steps"][stage]
        config = lambda folder, s=stage, st=steps, i=init: stage_config(cfg, s, st, folder, i)  # noqa: E731
        runs[f"kd_{stage}"] = (steps, init, config, lambda folder, c=config: fit_two_pass_kd(c(folder)))
        init = str(Path(cfg.out_dir) / f"kd_{stage}" / "model.nemo")
    steps = plan["steps"]["scratch"]
    for name, folder_name in scratch_folders(cfg).items():
        overrides = scratch_overrides(cfg, name)
        config = lambda folder, o=overrides: scratch_config(cfg, steps, folder, o)  # noqa: E731
        runs[folder_name] = (steps, None, config, lambda folder, c=config: fit_two_pass(c(folder)))
    return runs


def trained(folder: Path) -> bool:
    """The run's .nemo is there and whole (a process killed while saving it leaves a truncated archive)."""
    import tarfile

    try:
        with tarfile.open(folder / "model.nemo") as archive:
            return bool(archive.getmembers())
    except (OSError, tarfile.TarError, EOFError):
        return False


def _train(cfg: DictConfig, name: str, steps: int, train, init: str | None, config=None) -> str:
    """Train one run (resuming from its last checkpoint) under the settings recorded for it -> its .nemo;
    a run with a whole .nemo is trained."""
    from nemo_encrl.bench.settings import check_settings, record_settings, stored_settings

    folder = Path(cfg.out_dir) / name
    settings = _settings(cfg, name, steps, init, config(folder) if config else None)
    if stored_settings(folder):
        check_settings(folder, settings)
    record_settings(folder, settings)
    if not train:
        return str(cfg.teacher)
    if trained(folder):
        return str(folder / "model.nemo")
    print(f"[two-pass bench] {name}: {steps} steps", flush=True)
    return str(train(folder))


def _run(cfg: DictConfig, name: str, steps: int, train, init: str | None, config=None) -> dict:
    """`config(folder)`: the run's training config; `train(folder)`: trains it (resumably) -> .nemo; then its
    scores (result.json). A run with a result.json is reused when its settings match."""
    from nemo_encrl.bench.settings import check_settings

    folder = Path(cfg.out_dir) / name
    if (folder / "result.json").exists():
        check_settings(folder, _settings(cfg, name, steps, init, config(folder) if config else None))
        print(f"[two-pass bench] {name}: done before, skipped", flush=True)
        return json.loads((folder / "result.json").read_text())
    nemo = _train(cfg, name, steps, train, init, config)
    result = {"run": name, "steps": steps, "nemo": nemo, **score(cfg, nemo, folder)}
    (folder / "result.json").write_text(json.dumps(result, indent=1))
    return result


def cost_inputs(cfg: DictConfig) -> dict:
    """What the step costs depend on: recorded with them, checked at every start."""
    return {"student_overrides": list(cfg.get("student_overrides", [])), "overrides": list(cfg.get("overrides", [])),
            "scratch_overrides": list(cfg.get("scratch_overrides", [])), "train_corpus": cfg.train_corpus,
            "cost": OmegaConf.to_container(cfg.cost)}  # fmt: skip


def _costs(cfg: DictConfig) -> dict:
    """cost.json of out_dir, measured there the first time; refused when measured for other models or data."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cost_file, inputs = out / "cost.json", cost_inputs(cfg)
    if not cost_file.exists():
        print(f"[two-pass bench] measuring step costs ({cfg.cost.steps} steps of each kind)", flush=True)
        cost_file.write_text(json.dumps({**measure_costs(cfg), "inputs": inputs}, indent=1))
    costs = json.loads(cost_file.read_text())
    if costs.get("inputs") != inputs:
        raise ValueError(f"{cost_file} was measured for other models or data ({costs.get('inputs')} then, {inputs} now): "
                         "give the profile another out_dir")  # fmt: skip
    return costs


def train_job(cfg: DictConfig, name: str) -> str:
    """One run's training by its folder name (what `workers` > 1 starts in each process) -> its .nemo."""
    runs = _runs(cfg, budgets(cfg, _costs(cfg)))
    if name not in runs:
        raise KeyError(f"--job {name}: no such run in the two-pass bench (one of {', '.join(runs)})")
    steps, init, config, train = runs[name]
    return _train(cfg, name, steps, train, init, config)


def run_two_pass_bench(cfg: DictConfig) -> Path:
    """Teacher scored; the three stages (in order) and the scratch student trained, `workers` at a time in
    their own processes when more than one; then each run scored, one at a time; the report."""
    from nemo_encrl.two_pass_bench.report import write_report

    for name in scratch_folders(cfg):  # a bad scratch config stops before the step costs are measured
        scratch_overrides(cfg, name)
    costs = _costs(cfg)
    plan = budgets(cfg, costs)
    results = {"teacher": _run(cfg, "teacher", 0, None, None)}
    runs = _runs(cfg, plan)
    out = Path(cfg.out_dir)
    unscored = [n for n in runs if not (out / n / "result.json").exists()]
    if int(cfg.get("workers", 1)) > 1 and unscored:
        from nemo_encrl.bench.parallel import run_wave

        done = {n for n in unscored if trained(out / n)}
        deps = {f"kd_{b}": {f"kd_{a}"} for a, b in zip(STAGES, STAGES[1:])}  # scratch starts beside stage 1
        units = {n: plan["units"][row_key(n)] for n in unscored}
        run_wave(cfg, unscored, "two-pass bench", units, done=done, deps=deps, verb="two-pass-bench")
    scored = {name: _run(cfg, name, steps, train, init, config) for name, (steps, init, config, train) in runs.items()}
    results.update({row_key(name): r for name, r in scored.items() if not name.startswith("scratch")})
    return write_report(cfg, costs, plan, results, {c: scored[f] for c, f in scratch_folders(cfg).items()})


def report_two_pass_bench(cfg: DictConfig) -> Path:
    """The report from the runs finished so far (rows and targets of the others marked as not finished);
    trains nothing."""
    from nemo_encrl.two_pass_bench.report import ROWS, run_folder, write_report

    out = Path(cfg.out_dir)
    if not (out / "cost.json").exists():
        raise FileNotFoundError(f"{out}/cost.json: out_dir={out} holds no two-pass bench to report on")
    costs = _costs(cfg)

    def scored(folder: str) -> dict | None:
        path = out / folder / "result.json"
        return json.loads(path.read_text()) if path.exists() else None

    results = {key: r for key, _ in ROWS if key != "scratch" and (r := scored(run_folder(key)))}
    sweep = {config: scored(folder) for config, folder in scratch_folders(cfg).items()}
    return write_report(cfg, costs, budgets(cfg, costs), results, sweep)
