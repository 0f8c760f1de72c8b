"""Mapping a full-context Conformer's weights onto a cache-aware streaming one (nemo_encrl.streaming_init)."""

import pytest
import torch
import torch.nn.functional as F

from nemo_encrl.streaming_init import causal_kernel, streaming_encoder_state, subsampling_output_weight


def test_causal_kernel_is_the_symmetric_kernels_past_and_centre():
    torch.manual_seed(0)
    channels, k, t = 3, 7, 20
    w, x = torch.randn(channels, 1, k), torch.randn(1, channels, t)
    past_and_centre = w.clone()
    past_and_centre[..., k // 2 + 1 :] = 0  # the future taps dropped
    expected = F.conv1d(F.pad(x, (k // 2, k // 2)), past_and_centre, groups=channels)
    causal = F.conv1d(F.pad(x, (k - 1, 0)), causal_kernel(w), groups=channels)  # NeMo's causal padding
    assert torch.allclose(causal, expected, atol=1e-6)
    with pytest.raises(ValueError, match="odd size"):
        causal_kernel(torch.randn(2, 1, 4))


def test_subsampling_output_weight_moves_each_frequency_bin_up():
    d, channels, f_old, f_new = 4, 3, 5, 6
    old = torch.arange(d * channels * f_old, dtype=torch.float32).view(d, channels * f_old)
    new = subsampling_output_weight(old, torch.Size([d, channels * f_new]), channels, shift=1).view(d, channels, f_new)
    assert torch.equal(new[:, :, 1:], old.view(d, channels, f_old))
    assert torch.count_nonzero(new[:, :, 0]) == 0
    with pytest.raises(ValueError, match="pre_encode.out"):
        subsampling_output_weight(old, torch.Size([d, 20]), channels)


def _encoder(**streaming):
    from nemo.collections.asr.modules import ConformerEncoder

    return ConformerEncoder(feat_in=16, n_layers=2, d_model=8, n_heads=2, conv_kernel_size=5, subsampling_factor=4,
                            subsampling_conv_channels=8, **streaming)  # fmt: skip


def test_streaming_encoder_state_loads_into_a_streaming_encoder():
    torch.manual_seed(0)
    full = _encoder()
    streaming = _encoder(att_context_size=[16, 3], att_context_style="chunked_limited", conv_context_size="causal",
                         causal_downsampling=True)  # fmt: skip
    source, target = full.state_dict(), streaming.state_dict()
    assert source["pre_encode.out.weight"].shape != target["pre_encode.out.weight"].shape
    state = streaming_encoder_state(source, target, channels=8, causal_convs=True)
    streaming.load_state_dict(state, strict=True)
    conv = "layers.0.conv.depthwise_conv.weight"
    assert torch.equal(streaming.state_dict()[conv], causal_kernel(source[conv]))
    assert torch.equal(streaming.state_dict()["layers.1.feed_forward1.linear1.weight"],
                       source["layers.1.feed_forward1.linear1.weight"])  # fmt: skip
    with pytest.raises(ValueError, match="layers.0.feed_forward1.linear1.weight"):
        bad = dict(source, **{"layers.0.feed_forward1.linear1.weight": torch.zeros(3, 3)})
        streaming_encoder_state(bad, target, channels=8, causal_convs=True)


STREAMING = {"att_context_size": [16, 3], "att_context_style": "chunked_limited", "conv_context_size": "causal",
             "causal_downsampling": True}  # fmt: skip


def _streaming_copy_of(full, **changes):
    """A stand-in for a CTC model under training: its config, preprocessor, encoder and CTC decoder."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    enc_cfg = OmegaConf.merge(full.cfg.encoder, {**STREAMING, **changes})
    model = torch.nn.Module()
    model.cfg = OmegaConf.create({"encoder": enc_cfg})
    model.preprocessor, model.encoder = instantiate(full.cfg.preprocessor), instantiate(enc_cfg)
    model.decoder = instantiate(full.cfg.decoder)
    return model


def test_init_streaming_from_maps_a_full_context_nemo(tiny_ctc_nemo):
    from nemo_encrl.streaming_init import StreamingInitError, init_streaming_from
    from nemo_encrl.teacher import load_ctc_model

    full = load_ctc_model(path=tiny_ctc_nemo)
    source = full.encoder.state_dict()
    model = _streaming_copy_of(full)
    assert init_streaming_from(model, str(tiny_ctc_nemo)) == ["preprocessor", "encoder", "decoder"]
    for key, value in full.decoder.state_dict().items():  # the CTC head of the same vocabulary comes along
        assert torch.equal(model.decoder.state_dict()[key], value)
    state = model.encoder.state_dict()
    conv = "layers.1.conv.depthwise_conv.weight"
    assert torch.equal(state[conv], causal_kernel(source[conv]))
    assert torch.equal(state["layers.0.self_attn.linear_q.weight"], source["layers.0.self_attn.linear_q.weight"])
    assert state["pre_encode.out.weight"].shape != source["pre_encode.out.weight"].shape
    for key, value in full.preprocessor.state_dict().items():
        assert torch.equal(model.preprocessor.state_dict()[key], value)

    attention_only = _streaming_copy_of(full, conv_context_size=None, causal_downsampling=False)
    init_streaming_from(attention_only, str(tiny_ctc_nemo))  # symmetric convolutions stay as they are
    assert torch.equal(attention_only.encoder.state_dict()[conv], source[conv])

    deeper = _streaming_copy_of(full, n_layers=full.cfg.encoder.n_layers + 1)
    with pytest.raises(StreamingInitError, match="n_layers"):
        init_streaming_from(deeper, str(tiny_ctc_nemo))


def test_streaming_finetune_has_the_two_pass_encoders_streaming_settings():
    """The two-pass recipe loads the streaming CTC model's encoder as it is: the settings must agree."""
    from nemo_encrl.config import load_config

    ctc = load_config("teacher", "streaming_ctc_finetune").model.encoder
    two_pass = load_config("two_pass", "conformer_rnnt_attention_demo").model.encoder
    for key in ("att_context_size", "att_context_style", "conv_context_size", "causal_downsampling", "n_layers",
                "d_model", "conv_kernel_size", "subsampling_factor"):  # fmt: skip
        assert ctc[key] == two_pass[key], key


def test_a_missing_streaming_start_is_named_before_training(tmp_path):
    from omegaconf import OmegaConf

    from nemo_encrl.training import run_training

    cfg = OmegaConf.create({"output_nemo": str(tmp_path / "out.nemo"), "init_streaming_from": str(tmp_path / "none.nemo")})
    with pytest.raises(FileNotFoundError, match="init_streaming_from=.*none.nemo: no such file"):
        run_training(cfg, build_model=None)
    assert not (tmp_path / "out.nemo").exists()


def test_a_streaming_ctc_model_is_scored_offline_and_cache_aware(tiny_ctc_nemo, tiny_corpus, tmp_path, capsys):
    """`nemo-encrl evaluate --streaming` on a CTC model with a streaming encoder: NeMo's cache-aware loop computes
    the offline encoder's output chunk by chunk, so both WERs agree; a full-context model is refused by name."""
    import json

    from omegaconf import open_dict

    from nemo_encrl.cli import main
    from nemo_encrl.streaming_init import init_streaming_from
    from nemo_encrl.teacher import load_ctc_model

    model = load_ctc_model(path=tiny_ctc_nemo)
    copy = _streaming_copy_of(model)
    init_streaming_from(copy, str(tiny_ctc_nemo))
    model.encoder = copy.encoder
    with torch.no_grad():  # no blank: every frame emits its best token, so each frame shows in the transcript
        model.decoder.decoder_layers[0].bias[-1] = -1e4
    with open_dict(model.cfg):
        model.cfg.encoder = copy.cfg.encoder
    model.save_to(str(tmp_path / "streaming_ctc.nemo"))
    dev, report = str(tiny_corpus / "dev_manifest.json"), tmp_path / "r.json"
    assert main(["evaluate", str(tmp_path / "streaming_ctc.nemo"), dev, "--streaming", "--json", str(report)]) == 0
    assert "cache-aware streaming: WER" in capsys.readouterr().out
    data = json.loads(report.read_text())
    assert all(e["hyp"] for e in data["examples"])  # every utterance emits: the comparison means something
    assert data["streaming"]["wer"] == pytest.approx(data["wer"]) and data["streaming"]["utterances"] == 12
    for key in ("substitutions", "deletions", "insertions"):
        assert data["streaming"][key] == data[key], key
    assert main(["evaluate", str(tiny_ctc_nemo), dev, "--streaming"]) == 2
    assert "not set up for cache-aware streaming" in capsys.readouterr().err
