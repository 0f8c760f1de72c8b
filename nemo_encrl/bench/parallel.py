"""Several bench jobs at once on one machine (`workers: N`), e.g. small students sharing one GPU (one
alone keeps an H100 ~7% busy). Budgets are steps, so running side by side changes only wall-clock.

Each job runs in its own process (`nemo-encrl bench --profile <out_dir>/profile.yaml --job NAME`,
its output in `<job>/log.txt`), in two waves: the scratch sweep together with every stage 1, then
the students and scratch partners (they need the sweep's choice and their stage 1). Speeds measured
while other jobs run are not comparable: run `--retime` on an idle machine before reading them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


class JobFailed(RuntimeError):
    pass


def job_env(cfg: DictConfig, cores: int | None = None) -> dict[str, str]:
    """The environment of one job process: `job_threads` torch/OpenMP threads (null: the CPU's cores shared
    out among the workers). Each process would otherwise take every core: measured on a 2-core CPU, two
    d80x6 jobs at 2 threads each made every step ~4x slower (2.9 s against 0.76 s alone), while at 1 thread
    each they ran at 1.1 s, 1.39x the throughput of one job at 2 threads."""
    threads = cfg.get("job_threads")
    if threads is None:
        cores = cores or len(os.sched_getaffinity(0))
        threads = max(1, cores // int(cfg.workers))
    if int(threads) < 1:
        raise ValueError(f"job_threads={threads}: must be at least 1 (or null)")
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(int(threads))
    return env


def run_wave(cfg: DictConfig, names: list[str], label: str, units: dict[str, float] | None = None) -> None:
    """Run `names` (finished ones return at once) `cfg.workers` at a time; after the wave, stop if any failed.
    `units` (each job's training compute) gives every line an ETA from the wave's own pace."""
    out = Path(cfg.out_dir)
    profile = out / "profile.yaml"
    OmegaConf.save(cfg, profile)
    env = job_env(cfg)
    units = {n: (units or {}).get(n, 1.0) for n in names}
    todo = {n: u for n, u in units.items() if not (out / n / "result.json").exists()}

    def one(name: str) -> tuple[str, int]:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "log.txt", "a") as log:
            cmd = [sys.executable, "-m", "nemo_encrl.cli", "bench", "--profile", str(profile), "--job", name]
            return name, subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False, env=env).returncode

    failed, start, done = [], time.monotonic(), 0.0
    with ThreadPoolExecutor(max_workers=int(cfg.workers)) as pool:
        futures = [pool.submit(one, name) for name in names]
        for i, future in enumerate(as_completed(futures), 1):
            name, code = future.result()
            done += todo.get(name, 0.0)
            print(f"[{label} {i}/{len(names)}] {name}: {'done' if code == 0 else f'FAILED (exit {code})'}"
                  f"{eta(time.monotonic() - start, done, sum(todo.values()))}", flush=True)
            if code:
                failed.append(name)
    if failed:
        raise JobFailed(f"bench jobs failed: {', '.join(failed)}; see {out}/<job>/log.txt (the same command retries them)")


def eta(elapsed_s: float, done: float, total: float) -> str:
    """', ~N min left' at the pace so far (nothing before the first trained job ends, or once all are)."""
    if done <= 0 or done >= total:
        return ""
    return f", ~{elapsed_s / done * (total - done) / 60:.0f} min left"
