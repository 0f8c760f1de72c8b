"""Real-time factor on this CPU: PyTorch and ONNX Runtime, batch 1, a fixed number of threads.

Both time the same thing, mel features -> encoder -> CTC log-probabilities, per utterance (the
preprocessor runs in PyTorch for both, outside the timed region, as NeMo's ONNX graph excludes it).
Each pass over the utterances is timed `repeats` times and the fastest pass counts, as `timeit`
advises: other processes only ever make a pass slower, so the minimum is the least noisy estimate.
`paired_speeds` times several models in one fresh process, their passes taking turns, so that a ratio
of two of them is not skewed by what a long-running process left behind (worker processes, thread
pools) or by the machine's speed drifting between measurements.
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


def _pass_seconds(run_one, items) -> float:
    start = time.perf_counter()
    for feats, lengths, _ in items:
        run_one(feats, lengths)
    return time.perf_counter() - start


def fastest_passes(runners: dict, repeats: int) -> dict:
    """{key: seconds of compute per second of audio of its fastest pass} for runners {key: (run_one, items)}.

    The passes take turns (a, b, a, b, ...), so every runner is sampled over the same stretch of time:
    this 2-core VM has slow spells lasting whole seconds (the teacher measured 0.0070, then 0.0044 ONNX
    RTF, in two back-to-back measurements in one process), which would otherwise fall on one model's
    measurement and not the other's.
    """
    if repeats < 1:
        raise ValueError(f"speed.repeats must be >= 1, got {repeats}")
    for run_one, items in runners.values():
        run_one(*items[0][:2])  # warm-up
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(repeats):
        for key, (run_one, items) in runners.items():
            best[key] = min(best[key], _pass_seconds(run_one, items))
    return {key: best[key] / sum(d for _, _, d in runners[key][1]) for key in runners}


def _pytorch_runner(model):
    model.eval()

    def run(feats, lengths):
        with torch.inference_mode():
            return model.decoder(encoder_output=model.encoder(audio_signal=feats, length=lengths)[0])

    return run


def _onnx_runner(onnx_path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}

    def run(feats, lengths):
        feed = {"audio_signal": feats.numpy()}
        if "length" in names:
            feed["length"] = lengths.numpy().astype(np.int64)
        return session.run(None, feed)

    return run


def _speeds_of(models: dict[str, str], onnx_dir: str, wavs: list[str], threads: int, repeats: int) -> dict:
    from nemo_encrl.export import export_onnx
    from nemo_encrl.teacher import load_ctc_model

    torch.set_num_threads(threads)
    runners, onnx_files = {}, []
    try:
        for name, nemo in models.items():
            model = load_ctc_model(path=nemo)
            items = _features(model, wavs)
            onnx_files.append(export_onnx(model, Path(onnx_dir) / f"{name}_{Path(nemo).stem}.onnx"))
            runners[name, "rtf_pytorch"] = (_pytorch_runner(model), items)
            runners[name, "rtf_onnx"] = (_onnx_runner(onnx_files[-1], threads), items)
        rtfs = fastest_passes(runners, repeats)
    finally:
        for onnx in onnx_files:  # the number is kept, not the file
            onnx.unlink(missing_ok=True)
    return {name: {kind: rtfs[name, kind] for kind in ("rtf_pytorch", "rtf_onnx")} for name in models}


def paired_speeds(models: dict[str, str], onnx_dir: str | Path, wavs: list[str], threads: int = 2, repeats: int = 3) -> dict:
    """{name: {"rtf_pytorch", "rtf_onnx"}} for each .nemo in `models`, all measured in one new process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_speeds_of, dict(models), str(onnx_dir), list(wavs), threads, repeats).result()
