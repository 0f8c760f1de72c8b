"""Has a stage-1 student collapsed? Within-utterance variance of encoder outputs, student vs teacher.

A collapsed student emits (nearly) the same vector at every frame: its head can then only predict
blank, and CTC finetuning has to undo that first. Prints the per-dimension variance over the frames of
each utterance, averaged over dims and utterances, for the teacher inside the stage-1 model, the
student, and the student through its `mse_encoder` projection (in the teacher's space).

    python benchmarks/frame_spread.py runs/encrl/encrl_stage1.nemo --manifest data/corpus/demo/dev_manifest.json
"""

from __future__ import annotations

import argparse
from pathlib import Path


def within_utterance_variance(encoded, lengths) -> float:
    """[B, T, D] -> mean over utterances and dims of the variance over each utterance's valid frames."""
    import torch

    return float(torch.stack([encoded[i, : int(n)].var(0).mean() for i, n in enumerate(lengths)]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage1", type=Path, nargs="+", help="stage-1 EncRL .nemo file(s)")
    parser.add_argument("--manifest", type=Path, default=Path("data/corpus/demo/dev_manifest.json"))
    parser.add_argument("--utterances", type=int, default=8)
    args = parser.parse_args()

    import soundfile as sf
    import torch

    from nemo_encrl.data.manifest import read_manifest
    from nemo_encrl.student import load_stage1

    entries = read_manifest(args.manifest)[: args.utterances]
    audio = [torch.tensor(sf.read(e["audio_filepath"], dtype="float32")[0]) for e in entries]
    lengths = torch.tensor([len(a) for a in audio])
    signal = torch.nn.utils.rnn.pad_sequence(audio, batch_first=True)
    print("| model | within-utterance variance of encoder outputs |\n|---|---|")
    for i, path in enumerate(args.stage1):
        model = load_stage1(path).eval()
        with torch.no_grad():
            feats, feat_len = model.preprocessor(input_signal=signal, length=lengths)
            if i == 0:
                t_enc, t_len, _, _ = model.teacher(feats, feat_len)
                print(f"| teacher | {within_utterance_variance(t_enc, t_len):.3f} |")
            s_enc, s_len = model.encoder(audio_signal=feats, length=feat_len)
            s_enc = s_enc.transpose(1, 2)
            print(f"| {path} | {within_utterance_variance(s_enc, s_len):.3f} |")
            if model.encoder_proj is not None:
                projected = within_utterance_variance(model.encoder_proj(s_enc), s_len)
                print(f"| {path} (projected to the teacher's width) | {projected:.3f} |")


if __name__ == "__main__":
    main()
