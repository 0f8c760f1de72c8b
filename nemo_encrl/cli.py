"""`nemo-encrl`: the command line of the plugin. Every subcommand has --help; training subcommands take
NeMo/Hydra-style `key=value` overrides of their YAML config."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from nemo_encrl.config import CONF_DIR
log = logging.getLogger("nemo_encrl")


def _corpus(args) -> Path:
    from nemo_encrl.data.corpus import build_corpus, load_profile

    profile = load_profile(args.profile, CONF_DIR)
    out = Path(args.out or f"data/corpus/{profile.name}")
    info = build_corpus(profile, out, num_workers=args.workers, fortunes_dir=args.fortunes_dir)
    summary = json.loads(info.read_text())["splits"]
    for split, s in summary.items():
        print(f"{split:5s} {s['utterances']:6d} utterances {s['hours']:6.2f} h {len(s['voices']):4d} voices  {s['manifest']}")
    return out


def _prepare(args) -> None:
    from nemo_encrl.data import real_corpora

    if args.command == "prepare-librispeech":
        result = real_corpora.prepare_librispeech(args.corpus_dir, args.out, args.parts or "auto")
    else:
        result = real_corpora.prepare_tedlium(args.corpus_dir, args.out, tuple(args.parts or ("train", "dev", "test")))
    for part, paths in result.items():
        print(f"{part}: {paths['manifest']}")


def _run_log(cfg) -> Path:
    """<exp_manager.exp_dir>/log.txt; an unwritable output_nemo stops the command before that folder is made."""
    from nemo_encrl.training import check_output

    if cfg.get("output_nemo"):
        check_output(cfg.output_nemo)
    return Path(cfg.exp_manager.exp_dir) / "log.txt"


def _fit(args, group: str, fit, log_of=_run_log):
    """Load the verb's config (conf/<group>/) and run `fit` on it. NeMo's, Lightning's and lhotse's output go
    to the run's log (`log_of(cfg)`, None: the terminal) while the terminal keeps the progress bar and the
    result; --verbose prints everything here instead."""
    from nemo_encrl.config import load_config
    from nemo_encrl.joblog import job_log

    cfg = load_config(group, args.config, args.overrides)
    log_path = None if args.verbose else log_of(cfg)
    if log_path is not None:
        print(f"nemo-encrl {args.command}: NeMo's output goes to {log_path} (--verbose: here)", flush=True)
    with job_log(log_path):
        return fit(cfg)


def _wrote(args, nemo: Path) -> Path:
    print(f"nemo-encrl {args.command}: wrote {nemo}", flush=True)
    return nemo


def _teacher(args) -> Path:
    from nemo_encrl.training import fit_ctc_bpe

    return _wrote(args, _fit(args, "teacher", fit_ctc_bpe))


def _distill(args) -> Path:
    from nemo_encrl.training import fit_encrl

    return _wrote(args, _fit(args, "encrl", fit_encrl))


def _cache_teacher(args) -> Path:
    from nemo_encrl.cache.builder import build_teacher_cache

    def beside_the_cache(cfg):  # none: the builder names the missing key
        return Path(f"{cfg.model.teacher.cache}_log.txt") if cfg.model.teacher.get("cache") else None

    folder = _fit(args, "encrl", build_teacher_cache, beside_the_cache)
    print(f"teacher cache: {folder} (stage 1 reads it with model.teacher.cache={folder})")
    return folder


def _finetune(args) -> dict:
    from nemo_encrl.finetune import finetune_students

    results = _fit(args, "finetune", finetune_students)
    for depth, result in results.items():
        print(f"depth {depth}: {result['nemo']} ({result['train_seconds']} s)")
    return results


def _export(args) -> dict:
    import soundfile as sf

    from nemo_encrl.export import compare_onnx, export_onnx
    from nemo_encrl.teacher import load_ctc_model

    model = load_ctc_model(path=args.model, what="model")
    out = export_onnx(model, args.out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    if args.check:
        audio, sr = sf.read(args.check, dtype="float32")
        if sr != model.cfg.sample_rate:
            raise ValueError(f"{args.check} has {sr} Hz audio, the model expects {model.cfg.sample_rate} Hz")
        result = compare_onnx(model, out, audio)
        print(f"onnxruntime vs PyTorch log-probs on {args.check}: max |diff| {result['max_abs_diff']:.2e} over "
              f"{result['frames']} frames, same greedy tokens: {result['same_greedy_tokens']}")
        return result
    return {}


def _average(args) -> Path:
    from nemo_encrl.averaging import average_checkpoints

    out = average_checkpoints(args.checkpoints, args.like, args.out)
    print(f"averaged {len(args.checkpoints)} checkpoints -> {out}")
    return out


def _bench(args) -> Path:
    from omegaconf import open_dict

    from nemo_encrl.bench import run_bench
    from nemo_encrl.bench.run import report_only, run_one
    from nemo_encrl.config import load_config

    cfg = load_config("bench", args.profile, args.overrides)
    if args.job:
        return run_one(cfg, args.job)
    with open_dict(cfg):
        cfg.command = " ".join(["nemo-encrl bench", f"--profile {args.profile}", *args.overrides])
    if args.report_only or args.retime:
        return report_only(cfg, retime_first=args.retime)
    return run_bench(cfg)


def _evaluate(args) -> dict:
    from nemo.collections.asr.models import EncDecCTCModel

    from nemo_encrl.device import pick_device
    from nemo_encrl.evaluate import evaluate_manifest, format_report, manifest_vocabulary, write_report
    from nemo_encrl.models.two_pass import TwoPassModel
    from nemo_encrl.teacher import TeacherError, load_asr_model

    model = load_asr_model(path=args.model, what="model", map_location=pick_device(args.device))
    if isinstance(model, TwoPassModel):
        return _evaluate_two_pass(model, args)
    if not isinstance(model, EncDecCTCModel):
        raise TeacherError(f"model {args.model} is a {type(model).__name__}: evaluate scores CTC and two-pass models")
    vocabulary = manifest_vocabulary(args.train_manifest) if args.train_manifest else None
    report = evaluate_manifest(model, args.manifest, batch_size=args.batch_size, vocabulary=vocabulary, streaming=args.streaming)
    print(format_report(report, Path(args.model).name))
    if args.json:
        write_report(report, args.json)
    return report


def _evaluate_two_pass(model, args) -> dict:
    from nemo_encrl.evaluate import write_report
    from nemo_encrl.two_pass_eval import evaluate_two_pass, format_two_pass_report

    report = evaluate_two_pass(model, args.manifest, batch_size=args.batch_size, streaming=args.streaming)
    print(format_two_pass_report(report, Path(args.model).name))
    if args.json:
        write_report(report, args.json)
    return report


def _two_pass(args) -> Path:
    from nemo_encrl.training import fit_two_pass

    return _wrote(args, _fit(args, "two_pass", fit_two_pass))


def _two_pass_kd(args) -> Path:
    from nemo_encrl.training import fit_two_pass_kd

    return _wrote(args, _fit(args, "two_pass", fit_two_pass_kd))


def _two_pass_bench(args) -> Path:
    from omegaconf import open_dict

    from nemo_encrl.config import load_config
    from nemo_encrl.two_pass_bench import run_two_pass_bench
    from nemo_encrl.two_pass_bench.run import report_two_pass_bench, train_job

    cfg = load_config("two_pass_bench", args.profile, args.overrides)
    if args.job:
        return Path(train_job(cfg, args.job))
    with open_dict(cfg):
        cfg.command = " ".join(["nemo-encrl two-pass-bench", f"--profile {args.profile}", *args.overrides])
    return report_two_pass_bench(cfg) if args.report_only else run_two_pass_bench(cfg)


def _two_pass_tune(args) -> dict:
    """Rescoring weight and length bonus chosen on a dev manifest, written into the model's config."""
    import os

    from nemo_encrl.evaluate import write_report
    from nemo_encrl.models.two_pass import TwoPassModel
    from nemo_encrl.teacher import load_asr_model
    from nemo_encrl.two_pass_eval import decode_manifest, tune_rescoring

    model = load_asr_model(path=args.model, what="two-pass model", kind=TwoPassModel)
    out = Path(args.out or args.model)
    choice = tune_rescoring(decode_manifest(model, args.dev_manifest, batch_size=args.batch_size))
    model.set_rescoring(choice["weight"], choice["length_bonus"])
    tmp = out.with_name(out.name + ".partial")
    model.save_to(str(tmp))
    os.replace(tmp, out)  # the model is never left half-written
    choice.update(model=str(out), dev_manifest=str(args.dev_manifest))
    write_report(choice, out.with_suffix(".rescoring.json"))
    print(f"weight {choice['weight']}, length bonus {choice['length_bonus']}: dev WER {100 * choice['dev_wer']:.2f}% "
          f"-> {out} (grid in {out.with_suffix('.rescoring.json')})")  # fmt: skip
    return choice


def _two_pass_export(args) -> Path:
    from nemo_encrl.models.first_pass import export_first_pass
    from nemo_encrl.models.two_pass import TwoPassModel
    from nemo_encrl.teacher import load_asr_model

    out = export_first_pass(load_asr_model(path=args.model, what="two-pass model", kind=TwoPassModel), args.out)
    print(f"first pass (plain NeMo EncDecRNNTBPEModel) -> {out}")
    return out


def _demo(args) -> dict:
    from omegaconf import open_dict

    from nemo_encrl.config import load_config
    from nemo_encrl.pipeline import run_demo

    cfg = load_config("demo", args.config, args.overrides)
    with open_dict(cfg):
        cfg.command = " ".join(["nemo-encrl demo", *(["--config", args.config] if args.config != "demo" else []),
                                *args.overrides])  # fmt: skip
    return run_demo(cfg)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nemo-encrl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("corpus", help="synthesise the offline multi-voice corpus (espeak-ng + flite + fortunes)")
    p.add_argument("--profile", default="demo", help="a profile in conf/corpus/ (tiny | demo | bench | teacher | teacher_x2) or a YAML file")
    p.add_argument("--out", help="output folder (default data/corpus/<profile>)")
    p.add_argument("--workers", type=int, default=2, help="parallel synthesis processes")
    p.add_argument("--fortunes-dir", type=Path, default=None, help="folder of fortune text files")
    p.set_defaults(func=_corpus)

    for name, what in (("prepare-librispeech", "LibriSpeech folder (with dev-clean/, ...)"),
                       ("prepare-tedlium", "TED-LIUM v3 folder (TEDLIUM_release-3/)")):  # fmt: skip
        p = sub.add_parser(name, help=f"NeMo manifests + lhotse cuts from a {what} via lhotse's recipe")
        p.add_argument("corpus_dir", type=Path, help=what)
        p.add_argument("out", type=Path, help="output folder")
        p.add_argument("--parts", nargs="*", help="splits to prepare (default: all found)")
        p.set_defaults(func=_prepare)

    training = (
        ("teacher", _teacher, "teacher", "conformer_ctc_bpe_demo", "train the demo teacher (NeMo Conformer-CTC BPE)",
         "trainer.max_steps=100"),
        ("distill", _distill, "encrl", "encrl_clip_mse", "EncRL stage 1: align a small student with a frozen teacher",
         "model.teacher.path=teacher.nemo"),
        ("cache-teacher", _cache_teacher, "encrl", "encrl_clip_mse",
         "run the teacher once over stage 1's training data and store what its losses read",
         "model.teacher.cache=runs/teacher_cache"),
        ("finetune", _finetune, "finetune", "ctc_finetune", "EncRL stage 2: plain CTC students of several depths",
         "init.stage1=stage1.nemo 'init.depths=[6,4]'"),
        ("two-pass", _two_pass, "two_pass", "conformer_rnnt_attention_demo",
         "train a two-pass model: streaming RNN-T first pass + attention rescorer on one encoder", "trainer.max_steps=100"),
        ("kd-rnnt", _two_pass_kd, "two_pass", "kd_rnnt", "two-pass distillation stage 1: student encoder + RNN-T from the teacher's lattice",
         "model.kd.teacher.path=teacher.nemo"),
        ("kd-rescorer", _two_pass_kd, "two_pass", "kd_rescorer",
         "two-pass distillation stage 2: the student's attention rescorer from the teacher's (encoder frozen)",
         "model.kd.init_from=stage1.nemo"),
        ("kd-deep", _two_pass_kd, "two_pass", "kd_deep", "two-pass distillation stage 3: deep finetuning of the whole student",
         "model.kd.init_from=stage2.nemo"),
    )  # fmt: skip
    for name, func, group, default, what, example in training:
        p = sub.add_parser(name, help=f"{what} (conf/{group}/)")
        p.add_argument("--config", default=default, help=f"name in conf/{group}/ or a YAML path")
        p.add_argument("overrides", nargs="*", help=f"Hydra-style overrides, e.g. {example}")
        p.add_argument("--verbose", action="store_true",
                       help="NeMo's and Lightning's output here (default: in the run's log, named as the command starts)")
        p.set_defaults(func=func)

    p = sub.add_parser("average", help="a .nemo whose weights are the mean of several checkpoints of one run")
    p.add_argument("checkpoints", type=Path, nargs="+", help="Lightning .ckpt files, e.g. <exp_dir>/*/checkpoints/*.ckpt")
    p.add_argument("--like", type=Path, help="a .nemo of the same model (config and tokenizer); default: the model "
                                             "the first checkpoint's own config describes (its tokenizer folder must exist)")
    p.add_argument("--out", type=Path, required=True, help="output .nemo")
    p.set_defaults(func=_average)

    p = sub.add_parser("export", help="ONNX export of a CTC .nemo with NeMo's exporter, checked in onnxruntime")
    p.add_argument("model", type=Path, help=".nemo file (a plain NeMo CTC model)")
    p.add_argument("out", type=Path, help="output .onnx")
    p.add_argument("--check", type=Path, help="a wav to compare onnxruntime's log-probs with PyTorch's")
    p.set_defaults(func=_export)

    p = sub.add_parser("two-pass-tune", help="choose a two-pass model's rescoring weight and length bonus on dev")
    p.add_argument("model", type=Path, help="two-pass .nemo file")
    p.add_argument("dev_manifest", type=Path, help="dev manifest (never the test set)")
    p.add_argument("--out", type=Path, help="tuned .nemo (default: rewrite MODEL)")
    p.add_argument("--batch-size", type=int, default=16)
    p.set_defaults(func=_two_pass_tune)

    p = sub.add_parser("two-pass-bench", help="two-pass distillation stage by stage vs scratch at equal compute -> docs/TWO_PASS_RESULTS.md")
    p.add_argument("--profile", default="quick", help="quick | cpu, or a YAML path (conf/two_pass_bench/)")
    p.add_argument("overrides", nargs="*", help="Hydra-style overrides, e.g. steps.rnnt=2000")
    p.add_argument("--job", help="train one run of the profile by its folder name (what workers > 1 starts)")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite the report from the runs finished so far (the others marked not finished)")
    p.set_defaults(func=_two_pass_bench)

    p = sub.add_parser("two-pass-export", help="a two-pass model's first pass as a plain NeMo EncDecRNNTBPEModel .nemo")
    p.add_argument("model", type=Path, help="two-pass .nemo file")
    p.add_argument("out", type=Path, help="output .nemo")
    p.set_defaults(func=_two_pass_export)

    p = sub.add_parser("bench", help="EncRL students vs a regularised scratch baseline at equal compute (step budgets) -> docs/RESULTS*.md")
    p.add_argument("--profile", default="quick", help="quick | cpu | gpu, or a YAML path (conf/bench/)")
    p.add_argument("--report-only", action="store_true", help="rewrite the report from the finished runs")
    p.add_argument("--retime", action="store_true",
                   help="time every finished run (and the teacher) again on an idle machine, then rewrite the report")
    p.add_argument("--job", help="run one job of the profile by its folder name (what workers > 1 starts)")
    p.add_argument("overrides", nargs="*", help="Hydra-style overrides, e.g. steps=4000 stage1_steps=1500")
    p.set_defaults(func=_bench)

    p = sub.add_parser("evaluate", help="WER/CER, parameters and real-time factor of a CTC or two-pass .nemo on a manifest")
    p.add_argument("model", type=Path, help=".nemo file")
    p.add_argument("manifest", type=Path, help="NeMo JSON-lines manifest")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", type=Path, help="write the full report here")
    p.add_argument("--train-manifest", type=Path,
                   help="the model's training manifest: also report errors on words seen / unseen in its transcripts")
    p.add_argument("--streaming", action="store_true",
                   help="also decode through NeMo's cache-aware streaming (a two-pass model's first pass, or a CTC model)")
    p.add_argument("--device", default="auto", help="auto (the GPU when there is one, with TF32) | cpu | cuda[:N]; "
                   "the real-time factor is that of this device")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("demo", help="the README's main job on the offline default, end to end (conf/demo/)")
    p.add_argument("--config", default="demo", help="name in conf/demo/ or a YAML path")
    p.add_argument("overrides", nargs="*", help="Hydra-style overrides of the bench profile, e.g. steps=1000 'depths=[6,4,2]'")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[nemo-encrl %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    log.setLevel(logging.INFO)
    try:
        args.func(args)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        # known bad input: one clear line, not a traceback (set NEMO_ENCRL_DEBUG=1 for the traceback)
        import os

        if os.environ.get("NEMO_ENCRL_DEBUG"):
            raise
        print(f"nemo-encrl {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
