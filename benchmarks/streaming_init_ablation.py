"""How much each streaming setting costs a full-context CTC Conformer that is not retrained, with its weights
loaded as they are or mapped by nemo_encrl.streaming_init: the dev WER per setting.

    python benchmarks/streaming_init_ablation.py                       # the CTC demo teacher on bench dev
    python benchmarks/streaming_init_ablation.py --save runs/streaming_init.nemo   # + the fully streaming, mapped model

`--save` writes the last row's model as a plain EncDecCTCModelBPE .nemo; the training recipes get the same model
from `init_streaming_from` (conf/teacher/streaming_ctc_finetune.yaml), checked weight for weight equal.
"""

from __future__ import annotations

import argparse

from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from nemo_encrl.evaluate import evaluate_manifest
from nemo_encrl.streaming_init import streaming_encoder_state, subsampling_channels
from nemo_encrl.teacher import load_ctc_model

ATT = {"att_context_size": [64, 7], "att_context_style": "chunked_limited"}
ROWS = [  # (label, encoder settings, map the weights)
    ("full context (as trained)", {}, False),
    ("attention [64, 7] chunked_limited", ATT, False),
    ("+ causal subsampling, pre_encode.out mapped", {**ATT, "causal_downsampling": True}, True),
    ("+ causal convolutions, loaded as they are", {**ATT, "conv_context_size": "causal"}, False),
    ("+ causal convolutions, kernels mapped", {**ATT, "conv_context_size": "causal"}, True),
    ("all three, mapped (a streaming encoder)", {**ATT, "conv_context_size": "causal", "causal_downsampling": True}, True),
]


def streaming_copy(path: str, settings: dict, mapped: bool):
    """The model at `path` with its encoder rebuilt under `settings`, its weights loaded as they are or mapped."""
    model = load_ctc_model(path=path)
    enc_cfg = OmegaConf.to_container(model.cfg.encoder) | settings
    encoder = instantiate(OmegaConf.create(enc_cfg))
    full, target = model.encoder.state_dict(), encoder.state_dict()
    if mapped:
        state = streaming_encoder_state(full, target, subsampling_channels(encoder),
                                        causal_convs=enc_cfg.get("conv_context_size") == "causal")  # fmt: skip
    else:
        state = {k: full[k] if k in full and full[k].shape == v.shape else v for k, v in target.items()}
    encoder.load_state_dict(state)
    model.encoder = encoder
    with open_dict(model.cfg):
        model.cfg.encoder = OmegaConf.create(enc_cfg)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/demo_teacher.nemo", help="a full-context CTC Conformer .nemo")
    parser.add_argument("--manifest", default="data/corpus/bench/dev_manifest.json")
    parser.add_argument("--save", help="write the last row's model here (.nemo)")
    args = parser.parse_args()
    print(f"| encoder ({args.model}, no training) | WER | CER |\n|---|---|---|")
    for label, settings, mapped in ROWS:
        copy = streaming_copy(args.model, settings, mapped)
        report = evaluate_manifest(copy, args.manifest)
        print(f"| {label} | {100 * report['wer']:.1f}% | {100 * report['cer']:.1f}% |", flush=True)
    if args.save:
        copy.save_to(args.save)
        print(f"wrote {args.save}")


if __name__ == "__main__":
    main()
