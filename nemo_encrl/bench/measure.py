"""A finished model's numbers: test WER (and per voice group), size, and PyTorch / ONNX Runtime real-time
factors, each timed in a fresh process right beside the teacher so their ratio survives machine load."""

from __future__ import annotations

import json
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def speeds(nemo: str, test_manifest: Path, folder: Path, cfg: DictConfig) -> dict:
    from nemo_encrl.data.manifest import read_manifest
    from nemo_encrl.speed import paired_speeds

    wavs = [r["audio_filepath"] for r in read_manifest(test_manifest)][: int(cfg.speed.utterances)]
    timed = paired_speeds({"model": nemo, "teacher": cfg.teacher}, folder, wavs, int(cfg.speed.threads),
                          int(cfg.speed.repeats))  # fmt: skip
    return {**timed["model"], **{f"{k}_teacher": v for k, v in timed["teacher"].items()}}


def measure(nemo: str, test_manifest: Path, folder: Path, cfg: DictConfig) -> dict:
    from nemo_encrl.evaluate import evaluate_manifest
    from nemo_encrl.pruning import nonzero_parameters
    from nemo_encrl.teacher import load_ctc_model

    model = load_ctc_model(path=nemo, what="model")
    report = evaluate_manifest(model, test_manifest)
    report.update(nonzero_parameters=nonzero_parameters(model), nemo_mb=round(Path(nemo).stat().st_size / 1e6, 2))
    del model
    return {**report, **speeds(nemo, test_manifest, folder, cfg)}


def retime(cfg: DictConfig, folders: list[Path], test_manifest: Path) -> list[str]:
    """Measure the speeds of every finished model again, each beside the teacher in a fresh process, and
    keep the new numbers (WERs untouched): timings taken while the machine was busy are too slow by an
    unknown factor; one pass on an idle machine replaces them all under the same conditions."""
    done = [f for f in folders if (f / "result.json").exists()]
    for i, folder in enumerate(done, 1):
        result = json.loads((folder / "result.json").read_text())
        nemo = cfg.teacher if folder.name == "teacher" else result["nemo"]
        result.update(speeds(nemo, test_manifest, folder, cfg), speed_timed=time.strftime("%Y-%m-%d %H:%M"),
                      speed_settings=OmegaConf.to_container(cfg.speed))  # fmt: skip
        (folder / "result.json").write_text(json.dumps(result, indent=1))
        print(f"[retime {i}/{len(done)}] {folder.name}: ONNX RTF {result['rtf_onnx']:.4f} "
              f"(teacher beside it {result['rtf_onnx_teacher']:.4f})", flush=True)
    return [f.name for f in done]
