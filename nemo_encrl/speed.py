"""Real-time factor on this CPU: PyTorch and ONNX Runtime, batch 1, a fixed number of threads.

Both time the same thing, mel features -> encoder -> CTC log-probabilities, per utterance (the
preprocessor runs in PyTorch for both, outside the timed region, as NeMo's ONNX graph excludes it).
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


def pytorch_rtf(model, wavs: list[str], threads: int = 2) -> float:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model.eval()
        items = _features(model, wavs)
        with torch.inference_mode():
            model.decoder(encoder_output=model.encoder(audio_signal=items[0][0], length=items[0][1])[0])  # warm-up
            start = time.perf_counter()
            for feats, lengths, _ in items:
                model.decoder(encoder_output=model.encoder(audio_signal=feats, length=lengths)[0])
            elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous)
    return elapsed / sum(d for _, _, d in items)


def onnx_rtf(model, onnx_path: str | Path, wavs: list[str], threads: int = 2) -> float:
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

    session.run(None, feed(items[0][0], items[0][1]))  # warm-up
    start = time.perf_counter()
    for feats, lengths, _ in items:
        session.run(None, feed(feats, lengths))
    return (time.perf_counter() - start) / sum(d for _, _, d in items)
