"""Device choice: the GPU when there is one, else the CPU; a wrong --device is named in one line."""

import pytest
import torch

from nemo_encrl.device import enable_tf32, pick_device


def test_auto_picks_what_torch_sees():
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu_is_refused_and_tf32_stays_off():
    with pytest.raises(RuntimeError, match="--device cuda: torch sees no CUDA GPU"):
        pick_device("cuda")
    assert enable_tf32() is False


def test_unknown_device_is_named():
    with pytest.raises(ValueError, match="--device tpu: expected auto, cpu, cuda"):
        pick_device("tpu")
