from pathlib import Path

import pytest
import torch

from nemo_encrl.averaging import average_state_dicts
from nemo_encrl.cli import main


def _ckpt(path: Path, **tensors) -> Path:
    torch.save({"state_dict": tensors, "global_step": 1}, path)
    return path


def test_floats_are_averaged_and_counters_come_from_the_last(tmp_path):
    a = _ckpt(tmp_path / "a.ckpt", w=torch.tensor([1.0, 2.0]), h=torch.tensor([0.5], dtype=torch.bfloat16),
              steps=torch.tensor(3))  # fmt: skip
    b = _ckpt(tmp_path / "b.ckpt", w=torch.tensor([3.0, 6.0]), h=torch.tensor([1.5], dtype=torch.bfloat16),
              steps=torch.tensor(7))  # fmt: skip
    avg = average_state_dicts([a, b])
    assert torch.equal(avg["w"], torch.tensor([2.0, 4.0]))
    assert avg["h"].dtype == torch.bfloat16 and avg["h"].item() == 1.0
    assert avg["steps"].item() == 7


def test_mismatched_checkpoints_name_the_file_and_key(tmp_path):
    a = _ckpt(tmp_path / "a.ckpt", w=torch.zeros(2))
    with pytest.raises(ValueError, match=r"b\.ckpt: 'w' has shape \(3,\)"):
        average_state_dicts([a, _ckpt(tmp_path / "b.ckpt", w=torch.zeros(3))])
    with pytest.raises(ValueError, match=r"c\.ckpt has other weights"):
        average_state_dicts([a, _ckpt(tmp_path / "c.ckpt", v=torch.zeros(2))])
    torch.save({"weights": {}}, tmp_path / "d.ckpt")
    with pytest.raises(ValueError, match=r"d\.ckpt is not a Lightning checkpoint"):
        average_state_dicts([a, tmp_path / "d.ckpt"])
    with pytest.raises(FileNotFoundError, match="nope.ckpt does not exist"):
        average_state_dicts([a, tmp_path / "nope.ckpt"])


def test_average_command_on_a_real_run(tiny_ctc_nemo, tmp_path, capsys):
    """The tiny teacher's own exp_manager checkpoints -> a plain NeMo .nemo carrying their mean."""
    from nemo.collections.asr.models import ASRModel

    ckpts = sorted(tiny_ctc_nemo.parent.glob("runs/*/checkpoints/*.ckpt"))
    assert len(ckpts) >= 2, ckpts
    out = tmp_path / "avg.nemo"
    assert main(["average", *map(str, ckpts), "--like", str(tiny_ctc_nemo), "--out", str(out)]) == 0
    assert f"averaged {len(ckpts)} checkpoints" in capsys.readouterr().out
    model = ASRModel.restore_from(str(out), map_location="cpu")
    name, weight = next((k, v) for k, v in model.state_dict().items() if v.is_floating_point() and v.numel() > 1)
    expected = torch.stack([torch.load(c, map_location="cpu", weights_only=False)["state_dict"][name].float()
                            for c in ckpts]).mean(0)  # fmt: skip
    assert torch.allclose(weight.float(), expected, atol=1e-6)
    assert main(["average", str(ckpts[0]), "--like", str(tmp_path / "none.nemo"), "--out", str(out)]) == 2
    assert "none.nemo does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_a_checkpoint_becomes_a_nemo_without_like(tiny_two_pass_nemo, tmp_path, capsys):
    """A run's checkpoint alone (no .nemo of it yet: a run still training) -> the .nemo of the class its config
    names, with its weights and tokenizer; a checkpoint without a NeMo config is refused by name."""
    from nemo_encrl.models.two_pass import TwoPassModel

    last = next(tiny_two_pass_nemo.parent.glob("runs/*/checkpoints/*last.ckpt"))
    out = tmp_path / "from_ckpt.nemo"
    assert main(["average", str(last), "--out", str(out)]) == 0
    model = TwoPassModel.restore_from(str(out), map_location="cpu")
    weights = torch.load(last, map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert model.tokenizer.vocab == TwoPassModel.restore_from(str(tiny_two_pass_nemo), map_location="cpu").tokenizer.vocab
    bare = _ckpt(tmp_path / "bare.ckpt", w=torch.ones(3))
    assert main(["average", str(bare), "--out", str(out)]) == 2
    assert "bare.ckpt holds no NeMo model config" in capsys.readouterr().err
