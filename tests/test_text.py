from pathlib import Path

import pytest

from nemo_encrl.data.text import fortune_entries, fortune_files, fortune_sentences, normalize_sentence


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Don't hit a man when he's down.", "don't hit a man when he's down"),
        ("Well-known facts -- are they true?", "well known facts are they true"),
        ("It\u2019s a \"quoted\" word, isn't it!", "it's a quoted word isn't it"),
        ("There are 10 kinds of people.", None),  # digits: TTS would expand them its own way
        ("The NASA budget is large.", None),  # acronym: spelled out by TTS
        ("Ask Dr. Smith about it.", None),  # abbreviation
        ("Send mail to root@localhost now.", None),  # symbol
        ("Caf\u00e9 society is dull.", None),  # non-ASCII letter would be dropped from the transcript
    ],
)
def test_normalize_sentence(raw, expected):
    assert normalize_sentence(raw) == expected


def test_word_limits():
    assert normalize_sentence("one two three", min_words=4) is None
    assert normalize_sentence("one two three four", min_words=4, max_words=4) == "one two three four"


def test_fortune_entries_drop_attribution(tmp_path: Path):
    f = tmp_path / "quotes"
    f.write_text("First line of a quote\ncontinues here.\n\t\t-- Somebody Famous\n%\nSecond quote.\n%\n")
    assert list(fortune_entries(f)) == ["First line of a quote continues here.", "Second quote."]


def test_sentences_unique_and_from_plain_files(tmp_path: Path):
    (tmp_path / "a").write_text("The cat sat on the mat. The cat sat on the mat!\n%\nA dog barked at the moon.\n")
    (tmp_path / "a.dat").write_bytes(b"\x00\x01binary index")
    assert fortune_files(tmp_path) == [tmp_path / "a"]
    assert fortune_sentences(tmp_path, min_words=4) == ["the cat sat on the mat", "a dog barked at the moon"]


def test_missing_fortunes_dir_names_package(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="fortunes"):
        fortune_files(tmp_path / "nope")
