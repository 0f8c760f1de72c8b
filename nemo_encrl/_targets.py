"""Register the plugin's module prefix with NeMo's safe-instantiation allow-list."""

PLUGIN_PREFIX = "nemo_encrl."


def allow_plugin_targets() -> None:
    from nemo.core.classes import common

    if PLUGIN_PREFIX not in common.ALLOWED_TARGET_PREFIXES:
        common.ALLOWED_TARGET_PREFIXES.append(PLUGIN_PREFIX)
