"""Sentences for the synthetic corpus, taken from Debian's `fortunes` files.

The transcript is exactly what the synthesizer is asked to speak, so a sentence is only kept when
its normalised form can be read aloud unambiguously: plain words and apostrophes, no digits,
acronyms, abbreviations or symbols that a TTS engine would expand in its own way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Iterator

DEFAULT_FORTUNES_DIR = Path("/usr/share/games/fortunes")

# characters that a TTS engine would read out or expand (money, maths, markup, URLs)
_UNSPEAKABLE = re.compile(r"[0-9@#$%^&*_+=<>|\\/~`{}\[\]]")
# an all-caps token of two or more letters is probably an acronym that TTS spells out
_ACRONYM = re.compile(r"\b[A-Z]{2,}\b")
# a dot inside a token (e.g., i.e., Mr.) is an abbreviation
_ABBREVIATION = re.compile(r"\b(?:[A-Za-z]\.){2,}|\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|vs|etc|Prof|Inc|Ltd|Co)\.")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
_ATTRIBUTION = re.compile(r"^\s*--")


def fortune_files(fortunes_dir: Path = DEFAULT_FORTUNES_DIR) -> list[Path]:
    """The plain-text fortune files (not the .dat indexes or .u8 symlinks), sorted for determinism."""
    if not fortunes_dir.is_dir():
        raise FileNotFoundError(
            f"fortunes directory {fortunes_dir} not found: install Debian's 'fortunes' package "
            "(apt-get install fortunes) or pass --fortunes-dir"
        )
    files = sorted(p for p in fortunes_dir.iterdir() if p.is_file() and not p.suffix and not p.is_symlink())
    if not files:
        raise FileNotFoundError(f"no fortune text files in {fortunes_dir}")
    return files


def fortune_entries(path: Path) -> Iterator[str]:
    """Entries of one fortune file ('%'-separated), attribution lines removed, joined to one line."""
    text = path.read_text(encoding="utf-8", errors="replace")
    for entry in text.split("\n%\n"):
        lines = [ln for ln in entry.splitlines() if ln.strip() and not _ATTRIBUTION.match(ln)]
        if lines:
            yield " ".join(ln.strip() for ln in lines)


def normalize_sentence(raw: str, min_words: int = 1, max_words: int = 1000) -> str | None:
    """Lowercase words and apostrophes, or None when the sentence cannot be spoken unambiguously."""
    if _UNSPEAKABLE.search(raw) or _ACRONYM.search(raw) or _ABBREVIATION.search(raw):
        return None
    text = raw.replace("\u2019", "'").replace("`", "'").lower()
    # hyphens and dashes separate words; other punctuation is dropped
    text = re.sub(r"[-\u2013\u2014]+", " ", text)
    words = _WORD.findall(text)
    # every non-space character must have been part of a word or plain punctuation
    leftovers = re.sub(r"[a-z']+|[\s.,;:!?\"()]+", "", text)
    if leftovers or not (min_words <= len(words) <= max_words):
        return None
    return " ".join(words)


def split_sentences(entry: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(entry) if s]


def fortune_sentences(
    fortunes_dir: Path = DEFAULT_FORTUNES_DIR, min_words: int = 4, max_words: int = 18
) -> list[str]:
    """Unique normalised sentences from all fortune files, in first-seen order."""
    return unique(
        norm
        for path in fortune_files(fortunes_dir)
        for entry in fortune_entries(path)
        for sentence in split_sentences(entry)
        if (norm := normalize_sentence(sentence, min_words, max_words))
    )


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
