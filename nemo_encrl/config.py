"""Finding and loading the project's YAML configs, with Hydra-style `key=value` overrides."""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"


def conf_path(group: str, name: str) -> Path:
    """`name` is a path to a YAML file or the name of one in conf/<group>/."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        return path
    path = CONF_DIR / group / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        raise FileNotFoundError(f"no config '{name}' in {CONF_DIR / group} (known: {known})")
    return path


def load_config(group: str, name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Same override grammar as NeMo's Hydra scripts for plain values: `model.optim.lr=1e-3`,
    `+new.key=1` adds a key, `~key` removes one."""
    cfg = _with_defaults(group, conf_path(group, name))
    for item in overrides:
        if item.startswith("~"):
            key = item[1:]
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(cfg, parent) if parent else cfg
            if node is None or leaf not in node:
                raise KeyError(f"override {item!r}: key '{key}' not in config")
            node.pop(leaf)
            continue
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        add = key.startswith("+")
        key = key.lstrip("+")
        if not add and OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
            raise KeyError(f"override {item!r}: key '{key}' not in config (use +{key}=... to add it)")
        OmegaConf.update(cfg, key, OmegaConf.from_dotlist([f"v={value}"]).v, merge=True, force_add=add)
    return cfg


def _with_defaults(group: str, path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    """A YAML with Hydra's simplest `defaults:` list: configs of the same group, merged in order, the file
    itself (`_self_`) last unless listed; what `hydra_runner` does for the example scripts."""
    if path in seen:
        raise ValueError(f"config {path}: its defaults include itself ({' -> '.join(p.name for p in (*seen, path))})")
    try:
        cfg = OmegaConf.load(path)
    except yaml.YAMLError as e:  # one line naming the file and the place, not a parser traceback
        where = getattr(e, "problem_mark", None)
        at = f" line {where.line + 1}, column {where.column + 1}" if where else ""
        raise ValueError(f"config {path}:{at}: not valid YAML ({getattr(e, 'problem', None) or e})") from e
    defaults = cfg.pop("defaults", None)
    if not defaults:
        return cfg
    names = list(defaults) if "_self_" in defaults else [*defaults, "_self_"]
    merged = OmegaConf.create()
    for item in names:
        if not isinstance(item, str):
            raise ValueError(f"config {path}: defaults entry {item!r} is not a config name of conf/{group}/")
        part = cfg if item == "_self_" else _with_defaults(group, conf_path(group, item), (*seen, path))
        merged = OmegaConf.merge(merged, part)
    return merged

