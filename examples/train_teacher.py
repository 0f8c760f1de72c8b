# Train the demo teacher: a NeMo Conformer-CTC BPE model, as NeMo's speech_to_text_ctc_bpe.py does.
#
#   python examples/train_teacher.py \
#       model.train_ds.manifest_filepath=data/corpus/bench/train_manifest.json \
#       model.validation_ds.manifest_filepath=data/corpus/bench/dev_manifest.json \
#       trainer.max_epochs=40
#
# Started again with the same exp_manager settings, it resumes from the last checkpoint.

from omegaconf import DictConfig, OmegaConf

from nemo.core.config import hydra_runner
from nemo.utils import logging

from nemo_encrl.training import fit_ctc_bpe


@hydra_runner(config_path="../conf/teacher", config_name="conformer_ctc_bpe_demo")
def main(cfg: DictConfig) -> None:
    logging.info(f"Hydra config: {OmegaConf.to_yaml(cfg)}")
    fit_ctc_bpe(cfg)


if __name__ == "__main__":
    main()  # noqa pylint: disable=no-value-for-parameter
