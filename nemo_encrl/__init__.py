"""nemo_encrl: distil small NeMo CTC ASR models from a large frozen NeMo Conformer-CTC teacher (EncRL), and
compress two-pass (streaming RNN-T + attention rescorer) models by three-stage distillation.

Importing the package lets NeMo restore the plugin's own model classes from a `.nemo` file: NeMo 3.0
only instantiates `target`s under allowed prefixes, and we add exactly ours (never switching the
check off).
"""

from nemo_encrl._targets import PLUGIN_PREFIX, allow_plugin_targets

__version__ = "0.1.0"
__all__ = ["EncRLConfigError", "EncRLModel", "PLUGIN_PREFIX", "TwoPassModel", "allow_plugin_targets", "__version__"]

allow_plugin_targets()


def __getattr__(name: str):
    # heavy NeMo ASR imports only when the model class is asked for
    if name in ("EncRLModel", "EncRLConfigError"):
        from nemo_encrl import models

        return getattr(models, name)
    if name == "TwoPassModel":
        from nemo_encrl.models.two_pass import TwoPassModel

        return TwoPassModel
    raise AttributeError(f"module 'nemo_encrl' has no attribute {name!r}")
