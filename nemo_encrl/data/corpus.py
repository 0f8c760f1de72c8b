"""The offline multi-voice English corpus: TTS voices x fortune sentences -> NeMo manifests + lhotse cuts.

Split membership does not depend on the profile: a sentence's split comes from a seeded hash of its
text and a voice's split from a seeded shuffle of the full voice inventory. So every profile built
with the same seed shares one speaker- and sentence-independent test pool, and a model trained on
the `bench` train split can be scored honestly on the `demo` or `tiny` test split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from nemo_encrl.data.manifest import write_manifest
from nemo_encrl.data.text import DEFAULT_FORTUNES_DIR, fortune_sentences
from nemo_encrl.data.voices import Voice, require_engine, synthesize, voice_inventory, write_wav

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
CORPUS_INFO = "corpus.json"


@dataclass(frozen=True)
class Utterance:
    id: str
    split: str
    voice: Voice
    text: str
    rate: float
    pitch: int

    def wav_path(self, root: Path) -> Path:
        """Named by content too, so a changed plan never picks up a stale wav of the same id."""
        digest = hashlib.sha1(f"{self.voice.id}|{self.text}|{self.rate}|{self.pitch}".encode()).hexdigest()[:8]
        return root / "wav" / self.split / f"{self.id}-{digest}.wav"


def _stable_fraction(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_sentences(sentences: list[str], seed: int, held_out: float) -> dict[str, list[str]]:
    """Each sentence goes to test/dev with probability `held_out` each, else train (profile-independent)."""
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for sentence in sentences:
        u = _stable_fraction(seed, sentence)
        out["test" if u < held_out else "dev" if u < 2 * held_out else "train"].append(sentence)
    return out


def split_voices(voices: list[Voice], seed: int, held_out: float) -> dict[str, list[Voice]]:
    """Per engine, a seeded shuffle puts `held_out` of the voices (at least one) in test and in dev."""
    out: dict[str, list[Voice]] = {s: [] for s in SPLITS}
    for engine in sorted({v.engine for v in voices}):
        pool = sorted(v for v in voices if v.engine == engine)
        random.Random(f"{seed}:{engine}").shuffle(pool)
        n = max(1, round(held_out * len(pool))) if len(pool) >= 3 else 0
        out["test"] += pool[:n]
        out["dev"] += pool[n : 2 * n]
        out["train"] += pool[2 * n :]
    return out


def plan_corpus(cfg: DictConfig, sentences: list[str], voices: list[Voice]) -> list[Utterance]:
    """Which voice says which sentence at which rate and pitch, for every split of the profile."""
    sentence_splits = split_sentences(sentences, cfg.seed, cfg.held_out_sentences)
    voice_splits = split_voices(voices, cfg.seed, cfg.held_out_voices)
    plan: list[Utterance] = []
    # train only: each sentence spoken by this many voices (more acoustic variety from a bounded text pool)
    repeats = int(cfg.get("voices_per_sentence", 1))
    if repeats < 1:
        raise ValueError(f"corpus profile '{cfg.name}': voices_per_sentence must be >= 1, got {repeats}")
    for split in SPLITS:
        n = int(cfg.utterances[split])
        per_sentence = repeats if split == "train" else 1
        n_sentences = -(-n // per_sentence)
        pool, split_voices_ = sentence_splits[split], voice_splits[split]
        if n_sentences > len(pool):
            raise ValueError(
                f"corpus profile '{cfg.name}' asks for {n} {split} utterances ({n_sentences} sentences at "
                f"{per_sentence} per sentence) but only {len(pool)} {split} sentences are available: lower "
                f"utterances.{split}, raise voices_per_sentence or widen min_words/max_words"
            )
        if not split_voices_:
            raise ValueError(f"no {split} voices: the engines {list(cfg.engine_share)} have too few voices")
        rng = random.Random(f"{cfg.seed}:{split}:plan")
        by_engine = {e: [v for v in split_voices_ if v.engine == e] for e in cfg.engine_share}
        by_engine = {e: rng.sample(vs, len(vs)) for e, vs in by_engine.items() if vs}
        # train: engine_share mixes the engines; dev/test: every held-out voice speaks equally often,
        # as in a speaker-independent test set (per-engine results are reported separately)
        engines, weights = zip(*((e, cfg.engine_share[e] if split == "train" else len(vs)) for e, vs in by_engine.items()))
        spoken = dict.fromkeys(engines, 0)
        texts = [t for t in rng.sample(pool, n_sentences) for _ in range(per_sentence)][:n]
        for i, text in enumerate(texts):
            engine = rng.choices(engines, weights)[0]
            voice = by_engine[engine][spoken[engine] % len(by_engine[engine])]  # round-robin within an engine
            spoken[engine] += 1
            plan.append(
                Utterance(
                    id=f"{split}-{i:06d}",
                    split=split,
                    voice=voice,
                    text=text,
                    rate=round(rng.uniform(*cfg.rate), 3),
                    pitch=rng.randint(*cfg.pitch),
                )
            )
    return plan


def _render(args: tuple[Utterance, str, int]) -> dict:
    utt, root, sample_rate = args
    path = utt.wav_path(Path(root))
    if not path.exists():
        audio = synthesize(utt.voice, utt.text, utt.rate, utt.pitch, sample_rate)
        tmp = path.with_suffix(".tmp.wav")
        write_wav(tmp, audio, sample_rate)
        tmp.replace(path)  # a killed run never leaves a truncated wav behind
        duration = len(audio) / sample_rate
    else:
        import soundfile as sf

        duration = sf.info(path).duration
    return {
        "audio_filepath": str(path.resolve()),
        "duration": round(duration, 4),
        "text": utt.text,
        "speaker": utt.voice.id,
        "utt_id": utt.id,
    }


def build_corpus(cfg: DictConfig, out_dir: Path, num_workers: int = 2, fortunes_dir: Path | None = None) -> Path:
    """Synthesise the profile into `out_dir` (resumable: existing wavs are kept). Returns corpus.json."""
    out_dir = Path(out_dir)
    info_path = out_dir / CORPUS_INFO
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if info_path.exists() and json.loads(info_path.read_text()).get("config") == resolved:
        log.info("corpus %s already built in %s", cfg.name, out_dir)
        return info_path
    for engine in cfg.engine_share:
        require_engine(engine)
    sentences = fortune_sentences(Path(fortunes_dir or DEFAULT_FORTUNES_DIR), cfg.min_words, cfg.max_words)
    plan = plan_corpus(cfg, sentences, voice_inventory(tuple(cfg.engine_share)))
    jobs = [(u, str(out_dir), cfg.sample_rate) for u in plan]
    with ProcessPoolExecutor(max_workers=max(1, num_workers)) as pool:
        progress = tqdm(pool.map(_render, jobs, chunksize=16), total=len(jobs), desc=f"corpus {cfg.name}",
                        mininterval=0.5 if sys.stderr.isatty() else 10)  # fmt: skip
        rows = list(progress)
    summary = {}
    for split in SPLITS:
        split_rows = [r for r in rows if r["utt_id"].startswith(f"{split}-")]
        manifest = out_dir / f"{split}_manifest.json"
        write_manifest(manifest, split_rows)
        cuts = write_cuts(split_rows, out_dir / f"{split}_cuts.jsonl.gz")
        summary[split] = {
            "manifest": str(manifest.resolve()),
            "cuts": str(cuts.resolve()),
            "utterances": len(split_rows),
            "hours": round(sum(r["duration"] for r in split_rows) / 3600, 3),
            "voices": sorted({r["speaker"] for r in split_rows}),
        }
    info_path.write_text(json.dumps({"config": resolved, "splits": summary}, indent=1))
    return info_path


def write_cuts(rows: list[dict], path: Path) -> Path:
    """A lhotse CutSet over the same wavs, so `use_lhotse: true` loaders and lhotse tools read the corpus."""
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    recordings = RecordingSet.from_recordings(
        Recording.from_file(r["audio_filepath"], recording_id=r["utt_id"]) for r in rows
    )
    supervisions = SupervisionSet.from_segments(
        SupervisionSegment(
            id=r["utt_id"], recording_id=r["utt_id"], start=0.0, duration=recordings[r["utt_id"]].duration,
            text=r["text"], speaker=r["speaker"], language="en",
        )  # fmt: skip
        for r in rows
    )
    CutSet.from_manifests(recordings=recordings, supervisions=supervisions).to_file(path)
    return path


def load_profile(name_or_path: str, conf_dir: Path, _chain: tuple[str, ...] = ()) -> DictConfig:
    if name_or_path in _chain:
        raise ValueError(f"corpus profile 'base:' chain loops: {' -> '.join((*_chain, name_or_path))}")
    path = Path(name_or_path)
    if not path.suffix:
        path = conf_dir / "corpus" / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (conf_dir / "corpus").glob("*.yaml"))
        raise FileNotFoundError(f"corpus profile {name_or_path!r} not found ({path}); known profiles: {known}")
    cfg = OmegaConf.load(path)
    if "base" in cfg:  # a variant of another profile names it and lists only the keys it changes
        cfg = OmegaConf.merge(load_profile(cfg.pop("base"), conf_dir, (*_chain, name_or_path)), cfg)
    return cfg
