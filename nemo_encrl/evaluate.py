"""Scoring a NeMo ASR model on a manifest: stock `transcribe()` for hypotheses, jiwer for the counts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jiwer

from nemo_encrl.data.manifest import resolve_audio, validate_manifest


def error_rates(references: list[str], hypotheses: list[str]) -> dict:
    words = jiwer.process_words(references, hypotheses)
    ref_words = words.hits + words.substitutions + words.deletions
    return {
        "wer": words.wer,
        "cer": jiwer.cer(references, hypotheses),
        "substitutions": words.substitutions,
        "deletions": words.deletions,
        "insertions": words.insertions,
        "reference_words": ref_words,
        "utterances": len(references),
    }


def voice_group(speaker: str | None) -> str:
    """Synthetic corpus voices are `engine:voice`: flite, or espeak-ng by accent; anything else: 'all'."""
    if not speaker or ":" not in speaker:
        return "all"
    engine, voice = speaker.split(":", 1)
    return engine if engine != "espeak-ng" else f"espeak-ng/{voice.split('+')[0]}"


def evaluate_manifest(model, manifest: str | Path, batch_size: int = 32) -> dict:
    """WER/CER of `model` on `manifest`, plus its parameter count and end-to-end transcribe() real-time factor."""
    manifest = Path(manifest)
    rows = validate_manifest(manifest, sample_rate=model.cfg.get("sample_rate"))
    audio = [str(resolve_audio(r, manifest)) for r in rows]
    model.eval()
    start = time.perf_counter()
    hyps = model.transcribe(audio, batch_size=batch_size, verbose=False)
    elapsed = time.perf_counter() - start
    hyps = [h.text if hasattr(h, "text") else h for h in hyps]
    report = error_rates([r["text"] for r in rows], hyps)
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(voice_group(row.get("speaker")), []).append(i)
    report["per_group"] = {
        g: error_rates([rows[i]["text"] for i in idx], [hyps[i] for i in idx]) for g, idx in sorted(groups.items())
    }
    audio_seconds = sum(float(r["duration"]) for r in rows)
    report.update(
        manifest=str(manifest),
        parameters=sum(p.numel() for p in model.parameters()),
        audio_seconds=round(audio_seconds, 2),
        transcribe_seconds=round(elapsed, 2),
        rtf=elapsed / audio_seconds,
        examples=[{"ref": r["text"], "hyp": h} for r, h in list(zip(rows, hyps))[:5]],
    )
    return report


def write_report(report: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    return path


def format_report(report: dict, name: str = "model") -> str:
    return (
        f"{name}: WER {100 * report['wer']:.2f}% (S {report['substitutions']}, D {report['deletions']}, "
        f"I {report['insertions']} / {report['reference_words']} words), CER {100 * report['cer']:.2f}%, "
        f"{report['utterances']} utterances, {report['parameters'] / 1e6:.2f}M parameters, "
        f"RTF {report['rtf']:.4f}"
    )
