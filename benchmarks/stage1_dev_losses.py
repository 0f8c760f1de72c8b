"""Stage-1 losses of finished stage-1 models on a dev manifest, the teacher online, in eval mode: the
comparison of runs that differ only in where the teacher's outputs came from.

    python benchmarks/stage1_dev_losses.py data/corpus/demo/dev_manifest.json a/stage1.nemo b/stage1.nemo
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def dev_losses(nemo: str, manifest: str, batch_size: int) -> dict:
    from omegaconf import open_dict

    from nemo_encrl.models import EncRLModel

    model = EncRLModel.restore_from(nemo, map_location="cpu").eval()
    cfg = model.cfg.validation_ds
    with open_dict(cfg):
        cfg.manifest_filepath, cfg.batch_size, cfg.shuffle, cfg.num_workers = manifest, batch_size, False, 0
    model.setup_validation_data(cfg)
    sums, frames = {}, 0
    with torch.no_grad():
        for batch in model._validation_dl:
            out, terms, total = model._step_losses(batch)
            n = int(out["lengths"].sum())  # weight each batch by its frames
            for name, value in {**terms, "total": total}.items():
                sums[name] = sums.get(name, 0.0) + float(value) * n
            frames += n
    return {name: round(value / frames, 4) for name, value in sums.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = {m: dev_losses(m, args.manifest, args.batch_size) for m in args.models}
    names = list(next(iter(results.values())))
    print("| run | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for m, r in results.items():
        print(f"| {Path(m).parent.name} | " + " | ".join(f"{r[n]:.4f}" for n in names) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
