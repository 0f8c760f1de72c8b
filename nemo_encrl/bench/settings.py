"""What each bench run's numbers depend on, recorded beside it: a run is reused or resumed only under
the settings it was made with; anything else stops the bench before training."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from nemo_encrl.bench.plan import stage1_losses, stage1_of, stage2_kl
from nemo_encrl.config import CONF_DIR


class StaleRunError(RuntimeError):
    pass


PINNED = {"stage1": ("encrl", "encrl_clip_mse"), "finetune": ("finetune", "ctc_finetune")}
_reported: set[Path] = set()


def pinned_config(cfg: DictConfig, kind: str) -> Path:
    """The bench's own copy of a training config (`out_dir/configs/`), made at its first start: editing conf/
    later never changes an unfinished bench. A conf/ file that differs from the copy is reported, once."""
    group, name = PINNED[kind]
    source, copy = CONF_DIR / group / f"{name}.yaml", Path(cfg.out_dir) / "configs" / f"{name}.yaml"
    if not copy.exists():
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
    elif copy.read_bytes() != source.read_bytes() and copy not in _reported:
        _reported.add(copy)
        print(f"[bench] {source} differs from the copy this bench started with ({copy}): the bench keeps its copy; "
              "give the profile another out_dir to run with the new one", flush=True)  # fmt: skip
    return copy


def file_digest(path: str | Path) -> str:
    """Short SHA-1 of a file's bytes; read once per file version (settings digest the teacher for every job)."""
    stat = Path(path).stat()
    return _digest(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]


def _plain(node) -> object:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig | ListConfig) else node


def job_settings(cfg: DictConfig, job, steps: int, scratch_config: str | None = None) -> dict:
    """`scratch_config`: for students, the sweep's winner (its regularisation is theirs)."""
    data = cfg.data[job.data]
    s = {"kind": job.kind, "teacher": file_digest(cfg.teacher), "corpus": data.corpus, "eval_corpus": cfg.eval_corpus,
         "seed": job.seed, "steps": steps, "batch_duration": float(cfg.batch_duration),
         "validate_every": int(cfg.validate_every), "overrides": list(cfg.get("overrides", []))}  # fmt: skip
    if job.kind == "stage1":
        s.update(student=_plain(cfg.student), losses=stage1_losses(cfg, job.recipe),
                 teacher_cache=bool(data.get("teacher_cache")), stage1_overrides=list(cfg.get("stage1_overrides", [])),
                 stage1_config=file_digest(pinned_config(cfg, "stage1")))  # fmt: skip
    else:
        config = job.config if job.kind == "scratch" else scratch_config
        s.update(depth=job.depth, finetune_config=file_digest(pinned_config(cfg, "finetune")),
                 regularization=_plain(cfg.regularization), scratch_config=_plain(cfg.scratch.configs[config]))
        if job.kind == "scratch":
            s.update(student=_plain(cfg.student), scratch_overrides=list(cfg.get("scratch_overrides", [])))
        else:
            stage1 = stage1_of(cfg, job)  # a retrained stage 1 makes its students stale too
            s.update(stage2_overrides=list(cfg.get("stage2_overrides", [])), stage2_kl=stage2_kl(cfg, job.recipe),
                     stage1=stage1.name, stage1_settings=job_settings(cfg, stage1, int(cfg.stage1_steps)),
                     student=_plain(cfg.student))
    return s


def stored_settings(folder: Path) -> dict:
    path = folder / "settings.json"
    return json.loads(path.read_text()) if path.exists() else {}


def check_settings(folder: Path, settings: dict) -> None:
    """A run folder (finished or not) is used only under the settings it was made with."""
    stored = stored_settings(folder)
    if not stored and (folder / "result.json").exists():
        raise StaleRunError(f"{folder} has a result but no settings.json: delete that folder to run it again")
    changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
    if stored and changed:
        raise StaleRunError(
            f"{folder} was made with other settings ({', '.join(changed)} changed since, e.g. {changed[0]}: "
            f"{stored.get(changed[0])!r} then, {settings.get(changed[0])!r} now): delete that folder to run it "
            "again, or give the profile another out_dir; runs are never overwritten"
        )


def extended_from(folder: Path, settings: dict) -> int | None:
    """The step count of a finished student or scratch run whose settings differ from `settings` only by a
    larger `steps`: it continues from its last checkpoint (the step-free schedules make that exactly the
    longer run), so a longer budget reuses every step already trained. None otherwise."""
    stored = stored_settings(folder)
    if not stored or stored.get("kind") == "stage1" or not (folder / "result.json").exists():
        return None
    others = {k for k in set(stored) | set(settings) if k != "steps" and stored.get(k) != settings.get(k)}
    old, new = stored.get("steps"), settings.get("steps")
    return old if not others and isinstance(old, int) and isinstance(new, int) and new > old else None


def record_settings(folder: Path, settings: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(settings, indent=1))
