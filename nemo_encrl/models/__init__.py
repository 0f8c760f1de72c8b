from nemo_encrl.models.encrl_model import EncRLConfigError, EncRLModel

__all__ = ["EncRLConfigError", "EncRLModel"]
