"""What a bench profile trains, in order: the scratch sweep, then for each family one stage 1, its
students (one per depth) and their scratch partners (same data, depth and seed, the sweep's winner)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

KINDS = ("stage1", "encrl", "scratch")


class BenchConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Job:
    kind: str                  # stage1 | encrl (a student: stage 2 from a stage 1) | scratch
    data: str                  # a key of the profile's `data:` (the student's training corpus)
    seed: int
    recipe: str | None = None  # stage1 / encrl: a key of `recipes:`
    depth: int | None = None   # encrl / scratch: encoder layers kept
    config: str | None = None  # scratch: a key of `scratch.configs:`
    repeat: int = 0            # > 0: the same job once more, in its own folder (is the bench reproducible?)

    @property
    def name(self) -> str:
        again = f"_r{self.repeat}" if self.repeat else ""
        if self.kind == "stage1":
            return f"stage1_{self.recipe}_{self.data}_s{self.seed}{again}"
        if self.kind == "encrl":
            return f"{self.recipe}_{self.data}_L{self.depth}_s{self.seed}{again}"
        return f"scratch-{self.config}_{self.data}_L{self.depth}_s{self.seed}{again}"

    @property
    def method(self) -> str:
        """The label the report groups by: the recipe, or `scratch-<config>`."""
        return self.recipe if self.kind != "scratch" else f"scratch-{self.config}"


def check_profile(cfg: DictConfig) -> None:
    """Every name a family or the sweep refers to exists; depths fit the stage-1 student."""
    n_layers = int(cfg.student.n_layers)
    bad_depths = [d for d in cfg.depths if not 1 <= int(d) <= n_layers]
    if bad_depths:
        raise BenchConfigError(f"depths {list(bad_depths)}: the stage-1 student (student.n_layers) has {n_layers} layers")
    if n_layers not in [int(d) for d in cfg.depths]:
        raise BenchConfigError(f"depths {list(cfg.depths)} must include student.n_layers={n_layers}: the unit of compute "
                               "is a CTC step of the full-depth student")  # fmt: skip
    if not cfg.scratch.configs:
        raise BenchConfigError("scratch.configs is empty: the sweep needs at least one scratch configuration")
    sweep = cfg.scratch.sweep_at
    if sweep.data not in cfg.data or int(sweep.depth) not in [int(d) for d in cfg.depths]:
        raise BenchConfigError(f"scratch.sweep_at={dict(sweep)}: data must be one of {list(cfg.data)} and depth one "
                               f"of depths {list(cfg.depths)}")  # fmt: skip
    named = [(f"families[{i}]", fam) for i, fam in enumerate(cfg.families)]
    named += [(f"repeat[{i}]", fam) for i, fam in enumerate(cfg.get("repeat") or [])]
    for where, fam in named:
        if fam.recipe not in cfg.recipes:
            raise BenchConfigError(f"{where}.recipe={fam.recipe!r} is not in recipes {list(cfg.recipes)}")
        if fam.data not in cfg.data:
            raise BenchConfigError(f"{where}.data={fam.data!r} is not in data {list(cfg.data)}")
        extra = [d for d in fam.get("depths", cfg.depths) if int(d) not in [int(x) for x in cfg.depths]]
        if extra:
            raise BenchConfigError(f"{where}.depths {extra} are not in depths {list(cfg.depths)}")
    known = {"clip", "mse_logprobs", "mse_encoder", "kl", "hidden", "ctc"}  # model.loss.* of conf/encrl
    for name, recipe in cfg.recipes.items():
        unknown = set(recipe or {}) - known - {"stage2_kl"}
        if unknown:
            raise BenchConfigError(f"recipes.{name}: unknown stage-1 losses {sorted(unknown)} (known: {sorted(known)}, "
                                   "and stage2_kl: the KL weight of stage 2)")  # fmt: skip
    for where, fam in named:
        if stage2_kl(cfg, fam.recipe) and not cfg.data[fam.data].get("teacher_cache"):
            raise BenchConfigError(f"{where}: recipe {fam.recipe} has stage2_kl, which reads the teacher's "
                                   f"posteriors from a teacher cache; data {fam.data} has teacher_cache: false")  # fmt: skip


def stage1_losses(cfg: DictConfig, recipe: str) -> dict:
    return {k: v for k, v in (cfg.recipes[recipe] or {}).items() if k != "stage2_kl"}


def stage2_kl(cfg: DictConfig, recipe: str | None) -> float:
    """The weight of stage 2's KL term to the teacher's posteriors (0: plain CTC)."""
    return float((cfg.recipes[recipe] or {}).get("stage2_kl", 0.0)) if recipe else 0.0


def sweep_jobs(cfg: DictConfig) -> list[Job]:
    at = cfg.scratch.sweep_at
    return [Job("scratch", at.data, int(at.seed), depth=int(at.depth), config=name) for name in cfg.scratch.configs]


def plan_jobs(cfg: DictConfig, chosen: str) -> list[Job]:
    """All jobs after the sweep, given the scratch configuration it chose (duplicates dropped, order kept);
    last, the `repeat:` families once more with identical settings in their own folders."""
    jobs: list[Job] = []
    families = [(fam, 0) for fam in cfg.families] + [(fam, 1) for fam in cfg.get("repeat") or []]
    for fam, again in families:
        depths = [int(d) for d in fam.get("depths", cfg.depths)]
        for seed in fam.seeds:
            jobs.append(stage1_of(cfg, Job("encrl", fam.data, int(seed), recipe=fam.recipe, repeat=again)))
            jobs += [Job("encrl", fam.data, int(seed), recipe=fam.recipe, depth=d, repeat=again) for d in depths]
            jobs += [Job("scratch", fam.data, int(seed), depth=d, config=chosen, repeat=again) for d in depths]
    return list(dict.fromkeys(jobs))


def stage1_of(cfg: DictConfig, job: Job) -> Job:
    """The stage-1 run a student starts from. Recipes that differ only in stage 2 (stage2_kl) share it:
    it is named after the first recipe in `recipes:` with the same stage-1 losses (so add new recipes
    after the ones whose stage 1 they share)."""
    losses = stage1_losses(cfg, job.recipe)
    recipe = next(name for name in cfg.recipes if stage1_losses(cfg, name) == losses)
    return Job("stage1", job.data, job.seed, recipe=recipe, repeat=job.repeat)
