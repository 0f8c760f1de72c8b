"""A model whose training loader (only) yields more than NeMo's (audio, audio_len, tokens, token_len).

NeMo builds every loader through `_setup_dataloader_from_config`; the mixin marks the training one and,
when `_train_dataset()` returns a dataset, hands it to NeMo's lhotse dataloader, which keeps the sampling,
bucketing, shuffling, DDP sharding and worker processes. Validation and test loaders stay NeMo's.
"""

from __future__ import annotations


class CustomTrainDatasetMixin:
    def _train_dataset(self):
        """The lhotse dataset of the training loader, or None for NeMo's own."""
        return None

    def setup_training_data(self, train_data_config):
        self._building_train_loader = True
        try:
            super().setup_training_data(train_data_config)
        finally:
            self._building_train_loader = False

    def _setup_dataloader_from_config(self, config):
        dataset = self._train_dataset() if getattr(self, "_building_train_loader", False) and config.get("use_lhotse") else None
        if dataset is None:
            return super()._setup_dataloader_from_config(config)
        from nemo.collections.common.data.lhotse import get_lhotse_dataloader_from_config

        return get_lhotse_dataloader_from_config(config, global_rank=self.global_rank, world_size=self.world_size,
                                                 dataset=dataset, tokenizer=self.tokenizer)  # fmt: skip
