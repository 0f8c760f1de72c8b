"""Compute budgets in optimizer steps, charged by measured step costs.

The unit is one CTC training step of the full-depth student (a batch of `batch_duration` seconds of
audio). Every student gets `steps` CTC steps of its own size; an EncRL student gives up steps for its
share of the family's stage 1 (stage-1 steps at their measured cost, plus the teacher's pass over the
train split when stage 1 reads a teacher cache), split over the family's depths in proportion to their
budgets. The family then costs exactly what its scratch partners cost. Wall-clock is reported, never
budgeted: two identical commands train the same steps.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from nemo_encrl.bench.plan import BenchConfigError, stage2_kl


@dataclass(frozen=True)
class Costs:
    """Step costs in units of one CTC step of the full-depth student."""

    ctc: dict[int, float]           # a CTC step of the student cut to each depth
    stage1_online: float            # a stage-1 step running the teacher
    stage1_cached: float            # a stage-1 step reading the teacher cache
    teacher_per_audio_hour: float   # the teacher's forward pass over one hour of audio (building the cache)
    unit_ms: float | None = None    # wall-clock of one unit where measured
    source: str = ""                # where the numbers come from
    stage2_kl_cached: dict[int, float] = field(default_factory=dict)  # CTC + KL to the cached teacher, per depth

    @classmethod
    def from_dict(cls, d: dict) -> Costs:
        kl = {int(k): float(v) for k, v in d.get("stage2_kl_cached", {}).items()}
        return cls(**{**d, "ctc": {int(k): float(v) for k, v in d["ctc"].items()}, "stage2_kl_cached": kl})

    def to_dict(self) -> dict:
        return asdict(self)


def load_or_measure(cfg: DictConfig, measure) -> Costs:
    """The profile's pinned costs, else the ones measured earlier for this out_dir, else `measure()` (saved)."""
    if cfg.cost.get("pinned"):
        costs = Costs.from_dict({**cfg.cost.pinned, "source": cfg.cost.pinned.get("source", "pinned in the profile")})
    else:
        path = Path(cfg.out_dir) / "cost.json"
        if path.exists():
            costs = Costs.from_dict(json.loads(path.read_text()))
        else:
            costs = measure()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(costs.to_dict(), indent=1))
    missing = [d for d in cfg.depths if int(d) not in costs.ctc]
    if missing:
        raise BenchConfigError(f"cost: no CTC step cost for depths {missing} (have {sorted(costs.ctc)}); measure again")
    return costs


def stage1_step_cost(cfg: DictConfig, costs: Costs, data: str) -> float:
    """One stage-1 step: reading the teacher cache, or running the teacher."""
    return costs.stage1_cached if cfg.data[data].get("teacher_cache") else costs.stage1_online


def stage1_units(cfg: DictConfig, costs: Costs, data: str, train_hours: float) -> float:
    """A family's stage 1: its steps, plus the teacher cache's build when stage 1 reads one."""
    build = train_hours * costs.teacher_per_audio_hour if cfg.data[data].get("teacher_cache") else 0.0
    return int(cfg.stage1_steps) * stage1_step_cost(cfg, costs, data) + build


def stage1_share(cfg: DictConfig, costs: Costs, data: str, depth: int, train_hours: float) -> float:
    """The units of a family's stage 1 charged to its student of `depth`: split over `depths` in proportion
    to the students' budgets (equal step counts, so in proportion to their CTC step costs)."""
    weights = {int(d): costs.ctc[int(d)] for d in cfg.depths}
    return stage1_units(cfg, costs, data, train_hours) * weights[depth] / sum(weights.values())


def student_step_cost(cfg: DictConfig, costs: Costs, recipe: str | None, depth: int) -> float:
    """One training step of a student (scratch or stage 2): CTC, or CTC + KL reading the teacher cache."""
    if not stage2_kl(cfg, recipe):
        return costs.ctc[depth]
    if depth not in costs.stage2_kl_cached:
        raise BenchConfigError(f"cost: no stage-2 KL step cost for depth {depth} (recipe {recipe}): the costs were "
                               "measured without a teacher cache or before KL recipes; measure them again")  # fmt: skip
    return costs.stage2_kl_cached[depth]


def stage2_steps(cfg: DictConfig, costs: Costs, data: str, depth: int, train_hours: float, recipe: str | None = None) -> int:
    """A student's stage-2 steps: its CTC budget less its share of the family's stage 1, at its step cost."""
    share = stage1_share(cfg, costs, data, depth, train_hours)
    steps = round((int(cfg.steps) * costs.ctc[depth] - share) / student_step_cost(cfg, costs, recipe, depth))
    if steps < 1:
        raise BenchConfigError(f"stage 1 ({share:.0f} units charged to depth {depth}) costs more than steps={cfg.steps}: "
                               "raise steps or lower stage1_steps")  # fmt: skip
    return steps


def job_steps(cfg: DictConfig, costs: Costs, job, train_hours: float) -> int:
    if job.kind == "stage1":
        return int(cfg.stage1_steps)
    if job.kind == "scratch":
        return int(cfg.steps)
    return stage2_steps(cfg, costs, job.data, job.depth, train_hours, job.recipe)
