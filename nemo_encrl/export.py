"""ONNX export through NeMo's own exporter, and a check of the exported graph against PyTorch.

NeMo's CTC export takes mel features (`audio_signal` [B, F, T], `length` [B]) and returns `logprobs`:
the preprocessor stays outside the graph, as in NeMo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def export_onnx(model, out_path: str | Path) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.export(str(out_path))
    if not out_path.exists():
        raise RuntimeError(f"NeMo's exporter did not write {out_path}")
    return out_path


def features(model, audio: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    signal = torch.tensor(audio, dtype=torch.float32)[None]
    with torch.no_grad():
        return model.preprocessor(input_signal=signal, length=torch.tensor([signal.shape[1]]))


def compare_onnx(model, onnx_path: str | Path, audio: np.ndarray) -> dict:
    """Max absolute difference between onnxruntime's and PyTorch's log-probabilities on one utterance."""
    import onnxruntime as ort

    feats, lengths = features(model, audio)
    with torch.no_grad():
        encoded, enc_len = model.encoder(audio_signal=feats, length=lengths)
        reference = model.decoder(encoder_output=encoded).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    feed = {"audio_signal": feats.numpy()}
    if "length" in inputs:
        feed["length"] = lengths.numpy().astype(np.int64)
    (onnx_logprobs,) = session.run(None, feed)[:1]
    T = min(reference.shape[1], onnx_logprobs.shape[1])
    return {
        "max_abs_diff": float(np.abs(reference[:, :T] - onnx_logprobs[:, :T]).max()),
        "frames": int(T),
        "same_greedy_tokens": bool((reference[:, :T].argmax(-1) == onnx_logprobs[:, :T].argmax(-1)).all()),
    }
