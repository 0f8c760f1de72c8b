"""Register the plugin's module prefix with NeMo's safe-instantiation allow-list.

Importing NeMo takes seconds, so `import nemo_encrl` does not: if NeMo's `common` module is already
loaded the prefix is added at once, otherwise right after that module is first imported (a post-import
hook on `sys.meta_path`). Either way, nothing of NeMo's can restore a plugin model before the prefix is there.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

PLUGIN_PREFIX = "nemo_encrl."
NEMO_COMMON = "nemo.core.classes.common"


def _add_prefix(common) -> None:
    if PLUGIN_PREFIX not in common.ALLOWED_TARGET_PREFIXES:
        common.ALLOWED_TARGET_PREFIXES.append(PLUGIN_PREFIX)


class _AfterNemoCommon(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the real loader of NeMo's `common` module to add the prefix after it runs."""

    def find_spec(self, name, path, target=None):
        if name != NEMO_COMMON:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _add_prefix(module)

        spec.loader.exec_module = exec_module
        return spec


def allow_plugin_targets() -> None:
    if NEMO_COMMON in sys.modules:
        _add_prefix(sys.modules[NEMO_COMMON])
    elif not any(isinstance(f, _AfterNemoCommon) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterNemoCommon())
