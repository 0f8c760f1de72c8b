"""Reading finished runs in compute: every validation point of a learning curve at its total compute
(units of a full-depth CTC step), for a student either with its share of the family's stage 1 (the
family costs what its scratch partners cost) or with the whole stage 1 (as if it were trained alone)."""

from __future__ import annotations

from omegaconf import DictConfig

from nemo_encrl.bench.budget import Costs, stage1_share, stage1_units, student_step_cost


def stage1_charge(cfg: DictConfig, costs: Costs, r: dict, hours: float, whole: bool) -> float:
    """Units of stage 1 charged to the student `r` (0 for scratch)."""
    if r["kind"] != "encrl":
        return 0.0
    if whole:
        return stage1_units(cfg, costs, r["data"], hours)
    return stage1_share(cfg, costs, r["data"], r["depth"], hours)


def compute_curve(cfg: DictConfig, costs: Costs, r: dict, hours: float, whole: bool = False) -> list[tuple[float, float]]:
    """(total units, dev WER) at each validation of the run."""
    base, step = stage1_charge(cfg, costs, r, hours, whole), student_step_cost(cfg, costs, r.get("recipe"), r["depth"])
    return [(base + p["step"] * step, p["val_wer"]) for p in r["curve"] if "val_wer" in p]


def total_units(cfg: DictConfig, costs: Costs, r: dict, hours: float, whole: bool = False) -> float:
    return stage1_charge(cfg, costs, r, hours, whole) + r["steps"] * student_step_cost(cfg, costs, r.get("recipe"), r["depth"])


def units_to_reach(points: list[tuple[float, float]], target: float) -> float | None:
    """Compute at the first validation with dev WER <= target (None: never)."""
    return next((units for units, wer in points if wer <= target), None)


def epochs(r: dict, hours: float) -> list[float]:
    """Epochs of the training data seen at each validation (audio seen / the split's audio)."""
    return [p.get("audio_seconds", 0.0) / (3600 * hours) for p in r["curve"] if "val_wer" in p]
