"""Several bench jobs at once on one machine (`workers: N`), e.g. small students sharing one GPU (one
alone keeps an H100 ~7% busy). Budgets are steps, so running side by side changes only wall-clock.

Each job runs in its own process (`nemo-encrl <verb> --profile <out_dir>/profile.yaml --job NAME`, verb
`bench` or `two-pass-bench`), its output in `<job>/log.txt`. The EncRL bench runs two waves: the scratch
sweep together with every stage 1, then the students and scratch partners (they need the sweep's choice
and their stage 1). Speeds measured while other jobs run are not comparable: the EncRL bench's `--retime`
measures them again on an idle machine; the two-pass bench scores its runs after the wave, one at a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nemo_encrl.joblog import PROGRESS_ENV, read_progress


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


def run_wave(cfg: DictConfig, names: list[str], label: str, units: dict[str, float] | None = None,
             done: set[str] = frozenset(), deps: dict[str, set[str]] | None = None,
             status_every_s: float = 60.0, verb: str = "bench") -> None:
    """Run `names` `cfg.workers` at a time, each as soon as a worker is free and its `deps` (names in this
    wave) have finished, in the order given (those in `done`, finished under the same settings, start no
    process); after the wave, stop if any failed. A line per job, and every `status_every_s` the running
    jobs' steps; `units` (each job's training compute) gives both an ETA at the wave's own pace."""
    out = Path(cfg.out_dir)
    profile = out / "profile.yaml"
    OmegaConf.save(cfg, profile)
    env = job_env(cfg)
    for i, name in enumerate(n for n in names if n in done):
        print(f"[{label} {i + 1}/{len(names)}] {name}: done before, skipped", flush=True)
    total, finished, in_wave = len(names), len(done & set(names)), set(names)
    queue = [n for n in names if n not in done]
    pace = WavePace({n: (units or {}).get(n, 1.0) for n in queue})
    waits = {n: {d for d in (deps or {}).get(n, ()) if d in in_wave and d not in done} for n in queue}

    def one(name: str) -> tuple[str, int]:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "progress.txt").unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "nemo_encrl.cli", verb, "--profile", str(profile), "--job", name]
        with open(folder / "log.txt", "a") as log:
            job = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False,
                                 env={**env, PROGRESS_ENV: str(folder / "progress.txt")})
        return name, job.returncode

    failed: list[str] = []
    with ThreadPoolExecutor(max_workers=int(cfg.workers)) as pool:
        pending = {}
        while queue or pending:
            for name in [n for n in queue if waits[n] & set(failed)]:  # a failed stage 1 fails its students
                queue.remove(name)
                finished += 1
                print(f"[{label} {finished}/{total}] {name}: not run, {sorted(waits[name] & set(failed))[0]} failed", flush=True)
                failed.append(name)
            while len(pending) < int(cfg.workers) and (ready := [n for n in queue if not waits[n]]):
                queue.remove(ready[0])
                pending[pool.submit(one, ready[0])] = ready[0]
            if not pending:  # nothing runs and nothing can start: only a dependency cycle would do that
                if queue:
                    raise JobFailed(f"bench jobs wait for each other and cannot start: {', '.join(queue)}")
                break
            ended, _ = wait(pending, timeout=status_every_s, return_when=FIRST_COMPLETED)
            for future in ended:
                name, code = future.result()
                del pending[future]
                finished += 1
                pace.finish(name)
                print(f"[{label} {finished}/{total}] {name}: {_outcome(out / name, code)}{pace.eta()}", flush=True)
                if code:
                    failed.append(name)
                else:
                    for n in queue:
                        waits[n].discard(name)
            running = {name: read_progress(out / name / "progress.txt") for f, name in pending.items() if f.running()}
            pace.update({name: p for name, p in running.items() if p})
            if not ended and running:
                steps = ", ".join(f"{n} {p[0]}/{p[1]}" if p else f"{n} starting" for n, p in running.items())
                print(f"[{label} {finished}/{total} done] running: {steps}{pace.eta()}", flush=True)
    if failed:
        raise JobFailed(f"bench jobs failed: {', '.join(failed)}; see {out}/<job>/log.txt (the same command retries them)")


def _outcome(folder: Path, code: int) -> str:
    if code:
        return f"FAILED (exit {code}; the end of {folder}/log.txt says why)"
    result = json.loads((folder / "result.json").read_text()) if (folder / "result.json").exists() else {}
    return f"done, {result.get('steps')} steps" + (f", test WER {100 * result['wer']:.1f}%" if "wer" in result else "")


class WavePace:
    """The wave's compute done (finished jobs, and the steps running jobs took in this wave) against time,
    for an ETA at the pace of the last `window_s` (a machine that got busier, or a wave suspended for a
    while, does not skew it for long). A job resumed at step k counts only the steps after k."""

    def __init__(self, todo: dict[str, float], window_s: float = 1800.0):
        self.todo, self.first, self.now, self.window_s = todo, {}, {}, window_s
        self.samples = [(time.monotonic(), 0.0)]  # (time, compute done)

    def update(self, progress: dict[str, tuple[int, int]]) -> None:
        for name, (step, total) in progress.items():
            self.now[name] = step / max(total, 1)
            self.first.setdefault(name, self.now[name])

    def finish(self, name: str) -> None:
        self.first.setdefault(name, 0.0)
        self.now[name] = 1.0

    def eta(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        total = sum(units * (1.0 - self.first.get(name, 0.0)) for name, units in self.todo.items())
        done = sum(units * (self.now.get(name, 0.0) - self.first.get(name, 0.0)) for name, units in self.todo.items())
        self.samples = [(t, d) for t, d in self.samples if now - t <= 2 * self.window_s] + [(now, done)]
        recent = [(t, d) for t, d in self.samples if now - t <= self.window_s] or self.samples[-1:]
        then, done_then = recent[0] if done > recent[0][1] else self.samples[0]
        return eta(now - then, done - done_then, total - done_then)


def eta(elapsed_s: float, done: float, total: float) -> str:
    """', ~N min left' at the pace so far (nothing before the first trained job ends, or once all are)."""
    if done <= 0 or done >= total:
        return ""
    return f", ~{elapsed_s / done * (total - done) / 60:.0f} min left"
