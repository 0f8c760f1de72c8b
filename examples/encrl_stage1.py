# EncRL stage 1: align a small Conformer student with a frozen NeMo Conformer-CTC teacher (MSE + layer hints + CLIP at 0.1).
# In the style of NeMo's speech_to_text_ctc_bpe.py:
#
#   python examples/encrl_stage1.py \
#       model.teacher.path=models/demo_teacher.nemo \
#       model.train_ds.manifest_filepath=data/corpus/demo/train_manifest.json \
#       model.validation_ds.manifest_filepath=data/corpus/demo/dev_manifest.json \
#       model.encoder.n_layers=6 model.encoder.d_model=96 \
#       trainer.max_steps=3000
#
# The loss weights are the config's (model.loss.*); docs/ENCRL.md says how they were chosen.
# Started again with the same exp_manager settings, it resumes from the last checkpoint.
# With model.teacher.cache=<folder> (made by examples/cache_teacher.py with the same config), the
# training steps read the teacher's outputs from the cache instead of running the teacher.

from omegaconf import DictConfig, OmegaConf

from nemo.core.config import hydra_runner
from nemo.utils import logging

from nemo_encrl.training import fit_encrl


@hydra_runner(config_path="../conf/encrl", config_name="encrl_clip_mse")
def main(cfg: DictConfig) -> None:
    logging.info(f"Hydra config: {OmegaConf.to_yaml(cfg)}")
    fit_encrl(cfg)


if __name__ == "__main__":
    main()  # noqa pylint: disable=no-value-for-parameter
