"""A finished model's numbers: test WER (and per voice group), size, and PyTorch / ONNX Runtime real-time
factors, each timed in a fresh process right beside the teacher so their ratio survives machine load."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nemo_encrl.joblog import say


def speeds(nemo: str, test_manifest: Path, folder: Path, cfg: DictConfig) -> dict:
    from nemo_encrl.data.manifest import read_manifest
    from nemo_encrl.speed import paired_speeds

    wavs = [r["audio_filepath"] for r in read_manifest(test_manifest)][: int(cfg.speed.utterances)]
    timed = paired_speeds({"model": nemo, "teacher": cfg.teacher}, folder, wavs, int(cfg.speed.threads),
                          int(cfg.speed.repeats))  # fmt: skip
    return {**timed["model"], **{f"{k}_teacher": v for k, v in timed["teacher"].items()}}


def architecture(model) -> str:
    """What inference speed depends on: students of one architecture (EncRL, scratch, any recipe) run alike."""
    enc = model.cfg.encoder
    return (f"{type(model).__name__}/d{enc.d_model}x{enc.n_layers}/h{enc.n_heads}/ff{enc.ff_expansion_factor}/"
            f"k{enc.conv_kernel_size}/{enc.subsampling}{enc.subsampling_factor}/{sum(p.numel() for p in model.parameters())}")


def speeds_of_architecture(arch: str, nemo: str, test_manifest: Path, folder: Path, cfg: DictConfig) -> dict:
    """Each architecture's speeds are measured once per out_dir (with its first model) and reused: a timing in a
    fresh process beside the teacher costs as much as scoring the model; `--retime` measures every model again."""
    store = Path(cfg.out_dir) / "speed_by_architecture.json"
    known = json.loads(store.read_text()) if store.exists() else {}
    if arch not in known:
        known[arch] = {**speeds(nemo, test_manifest, folder, cfg), "speed_of": folder.name,
                       "speed_timed": time.strftime("%Y-%m-%d %H:%M")}  # fmt: skip
        partial = store.with_suffix(f".{os.getpid()}.partial")  # parallel jobs never read half a file
        partial.write_text(json.dumps(known, indent=1))
        os.replace(partial, store)
    return known[arch]


def measure(nemo: str, test_manifest: Path, folder: Path, cfg: DictConfig, timed: bool = True) -> dict:
    """`timed`: False where other jobs share the machine (bench workers); `retime` times them once they are done."""
    from nemo_encrl.evaluate import evaluate_manifest
    from nemo_encrl.device import pick_device
    from nemo_encrl.pruning import nonzero_parameters
    from nemo_encrl.teacher import load_ctc_model

    model = load_ctc_model(path=nemo, what="model", map_location=pick_device())  # WER on the GPU if any; speeds on CPU
    report = evaluate_manifest(model, test_manifest)
    report.update(nonzero_parameters=nonzero_parameters(model), nemo_mb=round(Path(nemo).stat().st_size / 1e6, 2),
                  architecture=architecture(model))  # fmt: skip
    del model
    if not timed:
        return report
    return {**report, **speeds_of_architecture(report["architecture"], nemo, test_manifest, folder, cfg)}


def retimed(folders: list[Path]) -> bool:
    """Every finished model among `folders` has speeds from a `retime` pass (the only one that records speed_settings)."""
    results = [json.loads((f / "result.json").read_text()) for f in folders if (f / "result.json").exists()]
    return bool(results) and all("speed_settings" in r for r in results)


def retime(cfg: DictConfig, folders: list[Path], test_manifest: Path) -> list[str]:
    """Measure the speeds of every finished model again and keep the new numbers (WERs untouched): timings
    taken while the machine was busy are too slow by an unknown factor; one pass on an idle machine replaces
    them all under the same conditions. Speed depends on the architecture alone (EncRL, scratch and every
    recipe run alike), so each architecture is timed once, its first model beside the teacher in a fresh process."""
    done = [f for f in folders if (f / "result.json").exists()]
    by_arch: dict[str, list[Path]] = {}
    for folder in done:
        by_arch.setdefault(json.loads((folder / "result.json").read_text()).get("architecture") or folder.name, []).append(folder)
    for i, group in enumerate(by_arch.values(), 1):
        first = json.loads((group[0] / "result.json").read_text())
        nemo = cfg.teacher if group[0].name == "teacher" else first["nemo"]
        timed = speeds(nemo, test_manifest, group[0], cfg)
        for folder in group:
            result = json.loads((folder / "result.json").read_text())
            result.update(timed, speed_of=group[0].name, speed_timed=time.strftime("%Y-%m-%d %H:%M"),
                          speed_settings=OmegaConf.to_container(cfg.speed))  # fmt: skip
            (folder / "result.json").write_text(json.dumps(result, indent=1))
        say(f"[retime {i}/{len(by_arch)}] {group[0].name} ({len(group)} models of its architecture): ONNX RTF "
            f"{timed['rtf_onnx']:.4f} (teacher beside it {timed['rtf_onnx_teacher']:.4f})")
    return [f.name for f in done]
