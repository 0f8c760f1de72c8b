# EncRL stage 2: plain NeMo CTC students cut from one stage-1 run, each finetuned with CTC;
# init.from=scratch trains the same architecture from random weights (the baseline).
#
#   python examples/finetune_ctc.py init.stage1=runs/encrl/encrl_stage1.nemo "init.depths=[6,4,2]"
#   python examples/finetune_ctc.py init.from=scratch init.teacher=models/demo_teacher.nemo
#
# Each depth is its own exp_manager run and resumes from its last checkpoint when started again.

from omegaconf import DictConfig, OmegaConf

from nemo.core.config import hydra_runner
from nemo.utils import logging

from nemo_encrl.finetune import finetune_students


@hydra_runner(config_path="../conf/finetune", config_name="ctc_finetune")
def main(cfg: DictConfig) -> None:
    logging.info(f"Hydra config: {OmegaConf.to_yaml(cfg)}")
    for depth, result in finetune_students(cfg).items():
        logging.info(f"depth {depth}: {result['nemo']} ({result['train_seconds']} s)")


if __name__ == "__main__":
    main()  # noqa pylint: disable=no-value-for-parameter
