"""Scoring a two-pass model on a manifest: the streaming first pass, the rescored result and the N-best's oracle,
and tuning the rescoring weights on dev.

The encoder runs once per utterance; every first-pass N-best is stored with both passes' scores, so the
report's rows and the whole (weight, length bonus) grid come from one decoding pass.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import jiwer
import soundfile as sf
import torch

from nemo_encrl.data.manifest import resolve_audio, validate_manifest
from nemo_encrl.evaluate import error_rates

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0)
LENGTH_BONUSES = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


def decode_manifest(model, manifest: str | Path, batch_size: int = 16, progress: bool = True,
                    streaming: bool = False) -> dict:  # fmt: skip
    """references, greedy first-pass texts and the scored N-best of every utterance (in manifest order);
    `streaming`: also the first pass through NeMo's cache-aware streaming, chunk by chunk."""
    from tqdm import tqdm

    manifest = Path(manifest)
    rows = validate_manifest(manifest, sample_rate=model.cfg.get("sample_rate"))
    order = sorted(range(len(rows)), key=lambda i: float(rows[i]["duration"]))  # less padding per batch
    greedy, nbests = [None] * len(rows), [None] * len(rows)
    model.eval()
    start, first_pass_seconds = time.perf_counter(), 0.0
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for idx in tqdm(batches, desc=f"two-pass decoding {manifest.name}", unit="batch", disable=not progress):
        audio = [torch.tensor(sf.read(str(resolve_audio(rows[i], manifest)), dtype="float32")[0]) for i in idx]
        signal = torch.nn.utils.rnn.pad_sequence(audio, batch_first=True).to(model.device)
        lengths = torch.tensor([len(a) for a in audio], device=model.device)
        tic = time.perf_counter()
        with torch.no_grad():
            encoded, encoded_len = model.forward(input_signal=signal, input_signal_length=lengths)
            first = model.decoding.rnnt_decoder_predictions_tensor(encoder_output=encoded, encoded_lengths=encoded_len)
        first_pass_seconds += time.perf_counter() - tic
        for i, hyp, nbest in zip(idx, first, model.score_nbest(encoded, encoded_len)):
            greedy[i], nbests[i] = hyp.text, nbest
    decoded = {"references": [r["text"] for r in rows], "greedy": greedy, "nbests": nbests,
               "seconds": time.perf_counter() - start, "first_pass_seconds": first_pass_seconds,
               "audio_seconds": sum(float(r["duration"]) for r in rows)}  # fmt: skip
    if streaming:
        from nemo_encrl.streaming import transcribe_cache_aware

        decoded["streaming"] = transcribe_cache_aware(model, [str(resolve_audio(r, manifest)) for r in rows])
    return decoded


def rescored_texts(nbests, weight: float, length_bonus: float) -> list[str]:
    return [n.texts[i] if (i := n.best(weight, length_bonus)) >= 0 else "" for n in nbests]


def oracle_texts(references: list[str], nbests) -> list[str]:
    """Per utterance, the N-best hypothesis with the fewest word errors: what a perfect second pass would pick."""
    out = []
    for ref, nbest in zip(references, nbests):
        texts = nbest.texts or [""]
        errors = [jiwer.process_words(ref, t) for t in texts]
        out.append(texts[min(range(len(texts)), key=lambda k: errors[k].substitutions + errors[k].deletions
                                                                + errors[k].insertions)])  # fmt: skip
    return out


def tune_rescoring(decoded: dict, weights=WEIGHTS, length_bonuses=LENGTH_BONUSES) -> dict:
    """The (weight, length bonus) with the lowest WER on this (dev) set; ties go to the smaller weight, then
    the bonus nearest 0. Returns the choice and the whole grid."""
    refs, nbests = decoded["references"], decoded["nbests"]
    grid = [{"weight": w, "length_bonus": b, "wer": error_rates(refs, rescored_texts(nbests, w, b))["wer"]}
            for w, b in itertools.product(weights, length_bonuses)]  # fmt: skip
    best = min(grid, key=lambda g: (round(g["wer"], 9), g["weight"], abs(g["length_bonus"])))
    return {"weight": best["weight"], "length_bonus": best["length_bonus"], "dev_wer": best["wer"], "grid": grid}


def two_pass_report(decoded: dict, weight: float, length_bonus: float) -> dict:
    """WER of the greedy (streaming) first pass, the beam's 1-best, the rescored result and the N-best oracle."""
    refs, nbests = decoded["references"], decoded["nbests"]
    rows = {
        "first_pass_greedy": decoded["greedy"],
        "first_pass_beam": [n.texts[0] if n.texts else "" for n in nbests],
        "two_pass": rescored_texts(nbests, weight, length_bonus),
        "oracle": oracle_texts(refs, nbests),
    }
    if "streaming" in decoded:
        rows["first_pass_streaming"] = decoded["streaming"]
    report = {name: error_rates(refs, hyps) for name, hyps in rows.items()}
    report["rescoring"] = {"weight": weight, "length_bonus": length_bonus}
    report["nbest_size"] = max((len(n.texts) for n in nbests), default=0)
    report["rtf_first_pass"] = decoded["first_pass_seconds"] / decoded["audio_seconds"]  # encoder + greedy RNN-T
    report["rtf_two_pass"] = decoded["seconds"] / decoded["audio_seconds"]  # + beam N-best + attention rescoring
    return report


def evaluate_two_pass(model, manifest: str | Path, batch_size: int = 16, streaming: bool = False,
                      progress: bool = True) -> dict:  # fmt: skip
    """Every pass of `model` on `manifest`, rescored with the weight and length bonus stored in the model."""
    rescoring = model.cfg.aux_attn.rescoring
    decoded = decode_manifest(model, manifest, batch_size=batch_size, progress=progress, streaming=streaming)
    report = two_pass_report(decoded, rescoring.weight, rescoring.length_bonus)
    report.update(manifest=str(manifest), parameters=sum(p.numel() for p in model.parameters()))
    return report


def format_two_pass_report(report: dict, name: str) -> str:
    lines = [f"{name}: {report['first_pass_greedy']['utterances']} utterances, N-best of {report['nbest_size']}, "
             f"weight {report['rescoring']['weight']}, length bonus {report['rescoring']['length_bonus']}, "
             f"RTF first pass (greedy) {report['rtf_first_pass']:.4f}, two-pass (greedy + beam + rescoring) "
             f"{report['rtf_two_pass']:.4f}"]  # fmt: skip
    for key, label in (("first_pass_greedy", "first pass, greedy, whole utterance"),
                       ("first_pass_streaming", "first pass, greedy, cache-aware streaming"),
                       ("first_pass_beam", "first pass, beam 1-best"), ("two_pass", "two-pass (rescored)"),
                       ("oracle", "N-best oracle")):  # fmt: skip
        if (r := report.get(key)) is None:
            continue
        lines.append(f"  {label:42s} WER {100 * r['wer']:6.2f}%  CER {100 * r['cer']:6.2f}%")
    return "\n".join(lines)
