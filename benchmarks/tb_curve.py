"""A metric's curve from an exp_manager run's TensorBoard events, as a markdown table with wall-clock.

    python benchmarks/tb_curve.py runs/teacher/Conformer-CTC-BPE-demo-teacher val_wer
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="exp_manager run folder (searched recursively for events)")
    parser.add_argument("tag", nargs="?", default="val_wer")
    args = parser.parse_args()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = []
    for path in sorted(args.run_dir.rglob("events.out.tfevents*")):
        acc = EventAccumulator(str(path))
        acc.Reload()
        if args.tag in acc.Tags()["scalars"]:
            events += acc.Scalars(args.tag)
    if not events:
        raise SystemExit(f"no '{args.tag}' scalars under {args.run_dir}")
    events.sort(key=lambda e: e.step)
    start = min(e.wall_time for e in events)
    print(f"| step | {args.tag} | wall-clock since the first value |\n|---|---|---|")
    for e in events:
        print(f"| {e.step} | {e.value:.4f} | {(e.wall_time - start) / 60:.1f} min |")


if __name__ == "__main__":
    main()
