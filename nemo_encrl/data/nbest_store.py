"""The student's first-pass N-best of every training utterance, decoded once for the rescorer stage.

In that stage the encoder and the RNN-T are frozen, so their N-best never changes: it is decoded once into
a JSON-lines file keyed by lhotse cut id (the ids NeMo's lhotse loader gives the same `train_ds`), and the
training loader hands each batch's lists to the model. A killed build continues where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from omegaconf import DictConfig

from nemo.collections.asr.data.audio_to_text_lhotse import LhotseSpeechToTextBpeDataset


class NBestStoreError(ValueError):
    pass


def read_nbest_store(path: str | Path) -> dict[str, list[list[int]]]:
    path = Path(path)
    if not path.is_file():
        raise NBestStoreError(f"model.kd.nbest={path}: no N-best store there (`nemo-encrl kd-rescorer` builds it from "
                              "model.kd.init_from before training)")
    store = {}
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # a build killed in the middle of a write: that utterance is decoded again
                break
            raise NBestStoreError(f"{path}:{i + 1}: not a JSON line; delete the file to decode the N-best again") from None
        store[row["id"]] = row["nbest"]
    return store


def build_nbest_store(model, train_ds: DictConfig, out: str | Path, batch_size: int = 16) -> Path:
    """Decode every cut of `train_ds` with `model`'s N-best first pass (its `aux_attn.first_pass_decoding`)."""
    from lhotse import CutSet
    from lhotse.dataset import AudioSamples
    from tqdm import tqdm

    from nemo_encrl.cache.reader import check_cacheable_inputs, train_cuts
    from nemo_encrl.models.two_pass_decoding import nbest_from_decoding

    check_cacheable_inputs(train_ds, "the student's first pass", "model.kd.nbest=null", NBestStoreError)
    if train_ds.get("is_tarred") or train_ds.get("shar_path"):
        raise NBestStoreError("model.train_ds: tarred/shar input repeats endlessly; the N-best store needs a manifest or cuts")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and (text := out.read_text()) and not text.endswith("\n"):  # killed mid-write: drop the torn line
        out.write_text(text[: text.rfind("\n") + 1])
    done = set(read_nbest_store(out)) if out.exists() else set()
    cuts = [c for c in train_cuts(train_ds) if c.id not in done]
    load = AudioSamples()
    model.eval()
    with out.open("a") as f:
        for start in tqdm(range(0, len(cuts), batch_size), desc=f"N-best of {len(cuts)} utterances ({len(done)} done before)"):
            batch = CutSet.from_cuts(cuts[start : start + batch_size])
            audio, lengths = load(batch)
            with torch.no_grad():
                encoded, encoded_len = model.forward(input_signal=audio.to(model.device), input_signal_length=lengths.to(model.device))
            for cut, nbest in zip(batch, nbest_from_decoding(model.nbest_decoding, encoded, encoded_len, model.nbest_size)):
                f.write(json.dumps({"id": cut.id, "nbest": nbest.tokens}) + "\n")
            f.flush()
    return out


class LhotseSpeechToTextWithNBest(LhotseSpeechToTextBpeDataset):
    """Batches of (audio, audio_len, tokens, token_len, N-best lists of token ids per utterance)."""

    def __init__(self, tokenizer, store: dict[str, list[list[int]]], source: str):
        super().__init__(tokenizer=tokenizer, return_cuts=True)
        self.store, self.source = store, source

    def __getitem__(self, cuts):
        audio, audio_lens, tokens, token_lens, cuts = super().__getitem__(cuts)
        missing = [c.id for c in cuts if c.id not in self.store]
        if missing:
            raise NBestStoreError(f"N-best store {self.source} has no entry for cut {missing[0]!r}: it was built for "
                                  "other training data; build it again for this train_ds")  # fmt: skip
        return audio, audio_lens, tokens, token_lens, [self.store[c.id] for c in cuts]
