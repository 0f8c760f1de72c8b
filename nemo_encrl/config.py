"""Finding and loading the project's YAML configs, with Hydra-style `key=value` overrides."""

from __future__ import annotations

from pathlib import Path

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
    cfg = OmegaConf.load(conf_path(group, name))
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
