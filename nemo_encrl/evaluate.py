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


def seen_word_errors(references: list[str], hypotheses: list[str], vocabulary: set[str]) -> dict:
    """How many reference words were missed (substituted or deleted), for words seen in training and
    for unseen ones apart: a CTC model without a language model has to spell an unseen word from the
    sound alone, so a test set's out-of-vocabulary rate bounds what the acoustics can fix.
    (Insertions belong to no reference word and are left out of both.)"""
    counts = {"seen": [0, 0], "unseen": [0, 0]}  # [reference words, missed]
    for ref, chunks in zip(references, jiwer.process_words(references, hypotheses).alignments):
        words = ref.split()
        for chunk in chunks:
            for word in words[chunk.ref_start_idx : chunk.ref_end_idx]:
                kind = counts["seen" if word in vocabulary else "unseen"]
                kind[0] += 1
                kind[1] += chunk.type != "equal"
    total = sum(n for n, _ in counts.values())
    return {
        "unseen_rate": counts["unseen"][0] / total if total else 0.0,
        **{f"{k}_words": n for k, (n, _) in counts.items()},
        **{f"{k}_missed": m / n if n else None for k, (n, m) in counts.items()},
    }


def voice_group(speaker: str | None) -> str:
    """Synthetic corpus voices are `engine:voice`: flite, or espeak-ng by accent; anything else: 'all'."""
    if not speaker or ":" not in speaker:
        return "all"
    engine, voice = speaker.split(":", 1)
    return engine if engine != "espeak-ng" else f"espeak-ng/{voice.split('+')[0]}"


def evaluate_manifest(model, manifest: str | Path, batch_size: int = 32, vocabulary: set[str] | None = None,
                      streaming: bool = False) -> dict:  # fmt: skip
    """WER/CER of `model` on `manifest`, plus its parameter count and end-to-end transcribe() real-time factor;
    with a training `vocabulary`, the errors on seen and unseen words apart; `streaming`: also through NeMo's
    cache-aware streaming, chunk by chunk (a streaming encoder's model)."""
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
    if vocabulary is not None:
        report["seen_words"] = seen_word_errors([r["text"] for r in rows], hyps, vocabulary)
    if streaming:
        from nemo_encrl.streaming import transcribe_cache_aware

        report["streaming"] = error_rates([r["text"] for r in rows], transcribe_cache_aware(model, audio))
    audio_seconds = sum(float(r["duration"]) for r in rows)
    report.update(
        manifest=str(manifest),
        parameters=sum(p.numel() for p in model.parameters()),
        audio_seconds=round(audio_seconds, 2),
        transcribe_seconds=round(elapsed, 2),
        rtf=elapsed / audio_seconds,
        device=str(next(model.parameters()).device),
        examples=[{"ref": r["text"], "hyp": h} for r, h in list(zip(rows, hyps))[:5]],
    )
    return report


def write_report(report: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    return path


def manifest_vocabulary(manifest: str | Path) -> set[str]:
    """The words of a (training) manifest's transcripts."""
    from nemo_encrl.data.manifest import read_manifest

    return {w for row in read_manifest(manifest) for w in row["text"].split()}


def format_report(report: dict, name: str = "model") -> str:
    text = (
        f"{name}: WER {100 * report['wer']:.2f}% (S {report['substitutions']}, D {report['deletions']}, "
        f"I {report['insertions']} / {report['reference_words']} words), CER {100 * report['cer']:.2f}%, "
        f"{report['utterances']} utterances, {report['parameters'] / 1e6:.2f}M parameters, "
        f"RTF {report['rtf']:.4f} ({report.get('device', 'cpu')})"
    )
    if streamed := report.get("streaming"):
        text += f"\n  cache-aware streaming: WER {100 * streamed['wer']:.2f}%, CER {100 * streamed['cer']:.2f}%"
    if seen := report.get("seen_words"):
        missed = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
        text += (
            f"\n  unseen in training: {100 * seen['unseen_rate']:.1f}% of the reference words; missed "
            f"(substituted or deleted): {missed(seen['seen_missed'])} of the seen words, "
            f"{missed(seen['unseen_missed'])} of the unseen ones"
        )
    return text
