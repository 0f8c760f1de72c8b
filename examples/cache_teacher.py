# Teacher-output cache for EncRL stage 1: run the frozen teacher once over the training data and store
# what the configured losses read (encoder output, CTC log-probabilities, paired hidden layers).
# Same config and overrides as the stage-1 run, plus where the cache goes:
#
#   python examples/cache_teacher.py \
#       model.teacher.path=models/demo_teacher.nemo \
#       model.train_ds.manifest_filepath=data/corpus/demo/train_manifest.json \
#       model.teacher.cache=runs/teacher_cache/demo
#   python examples/encrl_stage1.py ... model.teacher.cache=runs/teacher_cache/demo
#
# Started again after a kill, it finishes the cache (at most one shard is redone).

from omegaconf import DictConfig

from nemo.core.config import hydra_runner

from nemo_encrl.cache.builder import build_teacher_cache


@hydra_runner(config_path="../conf/encrl", config_name="encrl_clip_mse")
def main(cfg: DictConfig) -> None:
    build_teacher_cache(cfg)


if __name__ == "__main__":
    main()  # noqa pylint: disable=no-value-for-parameter
