"""The two-pass model (RNN-T first pass + attention rescorer) on the tiny corpus: build, train, decode, save,
restore, export the first pass to stock NeMo, and the config mistakes that must fail by name."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from nemo_encrl.models.two_pass_decoding import ScoredNBest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tiny_two_pass_nemo):
    from nemo_encrl.models.two_pass import TwoPassModel

    return TwoPassModel.restore_from(str(tiny_two_pass_nemo), map_location="cpu").eval()


def _files(corpus: Path, n: int = 4) -> list[str]:
    rows = [json.loads(line) for line in (corpus / "test_manifest.json").read_text().splitlines()]
    return [r["audio_filepath"] for r in rows[:n]]


def _batch(model, corpus: Path, n: int = 4):
    rows = [json.loads(line) for line in (corpus / "train_manifest.json").read_text().splitlines()][:n]
    audio = [torch.tensor(sf.read(r["audio_filepath"], dtype="float32")[0]) for r in rows]
    signal = torch.nn.utils.rnn.pad_sequence(audio, batch_first=True)
    tokens = [torch.tensor(model.tokenizer.text_to_ids(r["text"])) for r in rows]
    return (signal, torch.tensor([len(a) for a in audio]), torch.nn.utils.rnn.pad_sequence(tokens, batch_first=True),
            torch.tensor([len(t) for t in tokens]))  # fmt: skip


def test_builds_from_yaml_with_reserved_special_tokens(model, tiny_two_pass_nemo):
    aux = model.cfg.aux_attn
    vocab = model.tokenizer.vocab_size
    assert (aux.bos_id, aux.eos_id) == (vocab, vocab + 1)  # past the RNN-T vocabulary, which is untouched
    assert aux.num_classes % 8 == 0 and aux.num_classes >= vocab + 2
    assert model.joint.num_classes_with_blank == vocab + 1
    assert isinstance(model.attention.adapter, torch.nn.Linear)  # encoder 32 wide, decoder 24
    inputs, labels, mask = model.attention.teacher_forcing(torch.tensor([[5, 6, 0], [7, 0, 0]]), torch.tensor([2, 1]))
    assert inputs.tolist() == [[vocab, 5, 6], [vocab, 7, 0]]
    assert labels.tolist() == [[5, 6, vocab + 1], [7, vocab + 1, 0]]
    assert mask.tolist() == [[True, True, True], [True, True, False]]
    assert list(tiny_two_pass_nemo.parent.glob("runs/*/checkpoints/*last.ckpt"))  # exp_manager checkpoint to resume


def test_encoder_starts_from_the_ctc_model(tiny_ctc_nemo, tiny_corpus, tmp_path):
    """init_streaming_from maps the full-context CTC model's encoder onto the streaming one (as run_training
    applies it before fitting): every weight kept, the depthwise kernels made causal."""
    from conftest import tiny_two_pass_overrides

    from nemo_encrl.config import load_config
    from nemo_encrl.models.two_pass import TwoPassModel
    from nemo_encrl.streaming_init import causal_kernel, init_streaming_from
    from nemo_encrl.teacher import load_ctc_model
    from nemo_encrl.training import copy_tokenizer

    cfg = load_config("two_pass", "conformer_rnnt_attention_demo", tiny_two_pass_overrides(tiny_ctc_nemo, tiny_corpus, tmp_path))
    copy_tokenizer(cfg)
    fresh = TwoPassModel(cfg=cfg.model)
    assert init_streaming_from(fresh, cfg.init_streaming_from) == ["preprocessor", "encoder"]  # not the CTC decoder
    ctc = load_ctc_model(path=tiny_ctc_nemo)
    for key, value in ctc.encoder.state_dict().items():
        if key.endswith("depthwise_conv.weight"):
            value = causal_kernel(value)
        if not key.startswith("pre_encode.out"):  # one frequency bin more under causal subsampling
            assert torch.equal(fresh.encoder.state_dict()[key], value), key
    assert fresh.tokenizer.vocab_size == ctc.tokenizer.vocab_size  # tokenizer_from: the same vocabulary


def test_losses_finite_and_falling(model, tiny_corpus):
    torch.manual_seed(0)
    model.train()
    batch = _batch(model, tiny_corpus)
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    history = []
    for _ in range(8):
        encoded, encoded_len = model.forward(input_signal=batch[0], input_signal_length=batch[1])
        rnnt, attn = model._losses(encoded, encoded_len, batch[2], batch[3])
        assert torch.isfinite(rnnt) and torch.isfinite(attn)
        history.append((rnnt.item(), attn.item()))
        optim.zero_grad()
        (rnnt + model.attn_loss_weight * attn).backward()
        optim.step()
    model.eval()
    assert history[-1][0] < history[0][0] and history[-1][1] < history[0][1], history


def test_rescoring_combines_as_configured(model, tiny_corpus):
    signal, lengths, _, _ = _batch(model, tiny_corpus)
    with torch.no_grad():
        encoded, encoded_len = model.forward(input_signal=signal, input_signal_length=lengths)
    nbests = model.score_nbest(encoded, encoded_len)
    assert len(nbests) == 4
    for b, nbest in enumerate(nbests):
        assert 1 <= len(nbest.tokens) <= 4 and len(set(map(tuple, nbest.tokens))) == len(nbest.tokens)
        # s2 is the attention decoder's teacher-forced log P(h + eos | x) of each hypothesis
        for tokens, s2 in zip(nbest.tokens, nbest.second_pass):
            log_probs, labels, _ = model.attention(encoded[b : b + 1], encoded_len[b : b + 1], torch.tensor([tokens + [0]]),
                                                   torch.tensor([len(tokens)]))  # fmt: skip
            direct = log_probs[0, : len(tokens) + 1].gather(-1, labels[0, : len(tokens) + 1, None]).sum()
            assert s2 == pytest.approx(direct.item(), abs=1e-4)
    model.set_rescoring(weight=0.7, length_bonus=0.2)
    hyps = model.two_pass_hypotheses(encoded, encoded_len)
    for nbest, hyp in zip(nbests, hyps):
        combined = [s1 + 0.7 * s2 + 0.2 * len(t) for s1, s2, t in zip(nbest.first_pass, nbest.second_pass, nbest.tokens)]
        assert hyp.score == pytest.approx(max(combined), abs=1e-4)
        assert hyp.text == nbest.texts[combined.index(max(combined))]


def test_scored_nbest_picks_by_weight_and_bonus():
    nbest = ScoredNBest(tokens=[[1], [2, 3], [4, 5, 6]], texts=["a", "bc", "def"], first_pass=[-1.0, -2.0, -3.0],
                        second_pass=[-9.0, -2.0, -4.0])  # fmt: skip
    assert nbest.best(0.0, 0.0) == 0  # the first pass alone
    assert nbest.best(1.0, 0.0) == 1  # -10 / -4 / -7
    assert nbest.best(1.0, 2.0) == 1  # -8 / 0 / -1
    assert nbest.best(1.0, 4.0) == 2  # -6 / 4 / 5: a length bonus favours longer hypotheses
    assert ScoredNBest(tokens=[], texts=[], first_pass=[]).best(1.0, 0.0) == -1


def test_transcribe_two_pass_and_first_pass(model, tiny_corpus):
    files = _files(tiny_corpus)
    two_pass = model.transcribe(files, batch_size=4)
    assert len(two_pass) == 4 and all(isinstance(h.text, str) for h in two_pass)  # one hypothesis per file
    model.change_decoding_strategy(decoder_type="rnnt")
    try:
        first = model.transcribe(files, batch_size=4)
        assert len(first) == 4 and model.cfg.aux_attn.rescoring.decoder_type == "rnnt"
    finally:
        model.change_decoding_strategy(decoder_type="two_pass")
    with pytest.raises(ValueError, match="decoder_type='ctc'"):
        model.change_decoding_strategy(decoder_type="ctc")


RESTORE = """
import json, sys
from nemo.collections.asr.models import ASRModel
files = json.loads(sys.argv[3])
plain = ASRModel.restore_from(sys.argv[2], map_location="cpu")
stock = {"class": type(plain).__name__, "texts": [h.text for h in plain.transcribe(files, batch_size=4)],
         "plugin_loaded": "nemo_encrl" in sys.modules}
import nemo_encrl
model = ASRModel.restore_from(sys.argv[1], map_location="cpu")
hyps = model.transcribe(files, batch_size=4)
model.change_decoding_strategy(decoder_type="rnnt")
print("RESULT" + json.dumps({"stock": stock, "two_pass": [[h.text, h.score] for h in hyps],
                             "first_pass": [h.text for h in model.transcribe(files, batch_size=4)]}))
"""


def test_restore_in_new_process_and_first_pass_in_stock_nemo(model, tiny_two_pass_nemo, tiny_corpus, tmp_path):
    from nemo_encrl.models.first_pass import export_first_pass

    files = _files(tiny_corpus)
    model.set_rescoring(weight=0.5, length_bonus=0.0)
    here = [[h.text, h.score] for h in model.transcribe(files, batch_size=4)]
    model.save_to(str(tmp_path / "two_pass.nemo"))
    first = export_first_pass(model, tmp_path / "first_pass.nemo")
    run = subprocess.run([sys.executable, "-c", RESTORE, str(tmp_path / "two_pass.nemo"), str(first), json.dumps(files)],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.split("RESULT", 1)[1])
    assert out["stock"]["class"] == "EncDecRNNTBPEModel" and not out["stock"]["plugin_loaded"]
    for (text, score), (text2, score2) in zip(here, out["two_pass"]):
        assert text == text2 and score == pytest.approx(score2, abs=1e-5)
    assert out["stock"]["texts"] == out["first_pass"]  # the exported first pass is the model's own first pass


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.aux_attn.special_tokens=tokenizer", "model.aux_attn.special_tokens=tokenizer, but the tokenizer has no bos/eos"),
        ("model.aux_attn.adapter=none", "model.aux_attn.adapter=none, but the encoder gives 32 features"),
        ("model.loss.loss_name=warp_fast", "model.loss.loss_name='warp_fast' is not an RNN-T loss"),
        ("model.aux_attn.first_pass_decoding.beam.return_best_hypothesis=true", "return_best_hypothesis must be false"),
        ("model.joint.fuse_loss_wer=true", "model.joint.fuse_loss_wer=true"),
    ],
)
def test_bad_configs_fail_by_name(override, message, tiny_ctc_nemo, tiny_corpus, tmp_path):
    from conftest import tiny_two_pass_overrides

    from nemo_encrl.config import load_config
    from nemo_encrl.models.two_pass import TwoPassModel
    from nemo_encrl.training import copy_tokenizer

    cfg = load_config("two_pass", "conformer_rnnt_attention_demo",
                      tiny_two_pass_overrides(tiny_ctc_nemo, tiny_corpus, tmp_path) + [override])  # fmt: skip
    copy_tokenizer(cfg)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        TwoPassModel(cfg=cfg.model)


def test_cli_tune_evaluate_export(tiny_two_pass_nemo, tiny_corpus, tmp_path, capsys):
    """The three commands a user runs after training: tune on dev, score on test, export the first pass."""
    from nemo_encrl.cli import main
    from nemo_encrl.two_pass_eval import WEIGHTS

    tuned = tmp_path / "tuned.nemo"
    assert main(["two-pass-tune", str(tiny_two_pass_nemo), str(tiny_corpus / "dev_manifest.json"), "--out", str(tuned)]) == 0
    choice = json.loads(tuned.with_suffix(".rescoring.json").read_text())
    assert choice["weight"] in WEIGHTS and len(choice["grid"]) > 1
    assert choice["dev_wer"] == min(g["wer"] for g in choice["grid"])
    report_path = tmp_path / "report.json"
    assert main(["evaluate", str(tuned), str(tiny_corpus / "test_manifest.json"), "--json", str(report_path), "--streaming"]) == 0
    report = json.loads(report_path.read_text())
    assert report["rescoring"] == {"weight": choice["weight"], "length_bonus": choice["length_bonus"]}
    for row in ("first_pass_greedy", "first_pass_streaming", "first_pass_beam", "two_pass", "oracle"):
        assert report[row]["utterances"] == 12
    assert report["oracle"]["wer"] <= min(report["first_pass_beam"]["wer"], report["two_pass"]["wer"])
    assert "N-best oracle" in capsys.readouterr().out
    assert main(["two-pass-export", str(tuned), str(tmp_path / "first.nemo")]) == 0
    assert main(["two-pass-tune", str(tiny_corpus / "test_manifest.json"), str(tiny_corpus / "dev_manifest.json")]) == 2


def test_streaming_first_pass_equals_offline(model, tiny_corpus):
    """Causal downsampling and convolutions + chunked attention: NeMo's cache-aware streaming, chunk by chunk,
    computes the offline encoder's output (to float precision), so the streamed transcripts are the offline ones."""
    from nemo.collections.asr.parts.utils.streaming_utils import CacheAwareStreamingAudioBuffer

    from nemo_encrl.streaming import transcribe_cache_aware

    files = _files(tiny_corpus, 6)
    model.eval()  # NeMo's transcribe() leaves the encoder in training mode (its unfreeze() calls train())
    model.encoder.setup_streaming_params()  # before the buffer, which reads the chunk sizes from it
    buffer = CacheAwareStreamingAudioBuffer(model=model, online_normalization=False)
    buffer.append_audio_file(files[0], stream_id=-1)
    with torch.no_grad():
        offline, _ = model.encoder(audio_signal=buffer.buffer.clone(), length=buffer.streams_length.clone())
    cache, chunks = model.encoder.get_initial_cache_state(batch_size=1), []
    for step, (chunk, lengths) in enumerate(buffer):
        with torch.inference_mode():
            out, out_len, *cache = model.encoder.cache_aware_stream_step(
                processed_signal=chunk, processed_signal_length=lengths, cache_last_channel=cache[0],
                cache_last_time=cache[1], cache_last_channel_len=cache[2], keep_all_outputs=buffer.is_buffer_empty(),
                drop_extra_pre_encoded=model.encoder.streaming_cfg.drop_extra_pre_encoded if step else 0)  # fmt: skip
        chunks.append(out[..., : out_len[0]])
    streamed = torch.cat(chunks, -1)
    assert step > 2 and streamed.shape == offline.shape
    assert (streamed - offline).abs().max() < 1e-4 * offline.abs().max()
    model.change_decoding_strategy(decoder_type="rnnt")
    try:
        assert transcribe_cache_aware(model, files) == [h.text for h in model.transcribe(files, batch_size=4)]
    finally:
        model.change_decoding_strategy(decoder_type="two_pass")


def test_hypotheses_too_long_for_the_rescorer_score_minus_infinity(model, tiny_corpus):
    """An untrained first pass can emit hundreds of tokens; those hypotheses are rejected, not an error."""
    signal, lengths, _, _ = _batch(model, tiny_corpus, 2)
    with torch.no_grad():
        encoded, encoded_len = model.forward(input_signal=signal, input_signal_length=lengths)
    too_long = [5] * model.attention.max_length
    scores = model.attention.score(encoded, encoded_len, [[[5, 6], too_long], []])
    assert scores[1] == [] and scores[0][1] == float("-inf") and scores[0][0] > float("-inf")
    nbest = ScoredNBest(tokens=[too_long, [5, 6]], texts=["x", "y"], first_pass=[-1.0, -5.0], second_pass=scores[0][::-1])
    assert nbest.best(0.5, 0.0) == 1
