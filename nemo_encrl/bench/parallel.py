"""Several bench jobs at once on one machine (`workers: N`), e.g. small students sharing one GPU (one
alone keeps an H100 ~7% busy). Budgets are steps, so running side by side changes only wall-clock.

Each job runs in its own process (`nemo-encrl bench --profile <out_dir>/profile.yaml --job NAME`,
its output in `<job>/log.txt`), in two waves: the scratch sweep together with every stage 1, then
the students and scratch partners (they need the sweep's choice and their stage 1). Speeds measured
while other jobs run are not comparable: run `--retime` on an idle machine before reading them.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


class JobFailed(RuntimeError):
    pass


def run_wave(cfg: DictConfig, names: list[str], label: str) -> None:
    """Run `names` (finished ones return at once) `cfg.workers` at a time; after the wave, stop if any failed."""
    out = Path(cfg.out_dir)
    profile = out / "profile.yaml"
    OmegaConf.save(cfg, profile)

    def one(name: str) -> tuple[str, int]:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "log.txt", "a") as log:
            cmd = [sys.executable, "-m", "nemo_encrl.cli", "bench", "--profile", str(profile), "--job", name]
            return name, subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode

    failed = []
    with ThreadPoolExecutor(max_workers=int(cfg.workers)) as pool:
        for i, (name, code) in enumerate(pool.map(one, names), 1):
            print(f"[{label} {i}/{len(names)}] {name}: {'done' if code == 0 else f'FAILED (exit {code})'}", flush=True)
            if code:
                failed.append(name)
    if failed:
        raise JobFailed(f"bench jobs failed: {', '.join(failed)}; see {out}/<job>/log.txt (the same command retries them)")
