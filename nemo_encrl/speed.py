"""Real-time factor on this CPU: PyTorch and ONNX Runtime, batch 1, a fixed number of threads.

Both time the same thing, mel features -> encoder -> CTC log-probabilities, per utterance (the
preprocessor runs in PyTorch for both, outside the timed region, as NeMo's ONNX graph excludes it).
Each pass over the utterances is timed `repeats` times and the fastest pass counts, as `timeit`
advises: other processes only ever make a pass slower, so the minimum is the least noisy estimate.
`paired_speeds` times several models one after another in one fresh process, so that a ratio of two
of them is not skewed by what a long-running process left behind (worker processes, thread pools)
or by the machine's speed drifting between measurements minutes apart.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch


def _features(model, wavs: list[str]) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    out = []
    for wav in wavs:
        audio, sr = sf.read(wav, dtype="float32")
        signal = torch.tensor(audio)[None]
        with torch.no_grad():
            feats, lengths = model.preprocessor(input_signal=signal, length=torch.tensor([signal.shape[1]]))
        out.append((feats, lengths, len(audio) / sr))
    return out


def _best_pass(run_one, items, repeats: int) -> float:
    """Seconds of compute per second of audio of the fastest of `repeats` timed passes."""
    if repeats < 1:
        raise ValueError(f"speed.repeats must be >= 1, got {repeats}")
    run_one(*items[0][:2])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for feats, lengths, _ in items:
            run_one(feats, lengths)
        best = min(best, time.perf_counter() - start)
    return best / sum(d for _, _, d in items)


def pytorch_rtf(model, wavs: list[str], threads: int = 2, repeats: int = 3) -> float:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model.eval()
        items = _features(model, wavs)
        with torch.inference_mode():
            return _best_pass(
                lambda feats, lengths: model.decoder(encoder_output=model.encoder(audio_signal=feats, length=lengths)[0]),
                items,
                repeats,
            )
    finally:
        torch.set_num_threads(previous)


def onnx_rtf(model, onnx_path: str | Path, wavs: list[str], threads: int = 2, repeats: int = 3) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    items = _features(model, wavs)

    def feed(feats, lengths):
        f = {"audio_signal": feats.numpy()}
        if "length" in names:
            f["length"] = lengths.numpy().astype(np.int64)
        return f

    return _best_pass(lambda feats, lengths: session.run(None, feed(feats, lengths)), items, repeats)


def model_speeds(nemo: str, onnx_dir: str, wavs: list[str], threads: int, repeats: int) -> dict:
    """PyTorch and ONNX Runtime real-time factors of one .nemo (its ONNX file is exported and removed here)."""
    from nemo_encrl.export import export_onnx
    from nemo_encrl.teacher import load_ctc_model

    model = load_ctc_model(path=nemo)
    onnx = export_onnx(model, Path(onnx_dir) / f"{Path(nemo).stem}.onnx")
    try:
        return {"rtf_pytorch": pytorch_rtf(model, wavs, threads, repeats), "rtf_onnx": onnx_rtf(model, onnx, wavs, threads, repeats)}
    finally:
        onnx.unlink()


def _speeds_of(models: dict[str, str], onnx_dir: str, wavs: list[str], threads: int, repeats: int) -> dict:
    return {name: model_speeds(nemo, onnx_dir, wavs, threads, repeats) for name, nemo in models.items()}


def paired_speeds(models: dict[str, str], onnx_dir: str | Path, wavs: list[str], threads: int = 2, repeats: int = 3) -> dict:
    """{name: {"rtf_pytorch", "rtf_onnx"}} for each .nemo in `models`, all measured in one new process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_speeds_of, dict(models), str(onnx_dir), list(wavs), threads, repeats).result()
