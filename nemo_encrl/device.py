"""Where a command computes: the GPU when torch sees one, else the CPU; TF32 matmuls on GPUs that have them
(Ampere and later), as Lightning recommends, since fp32 training and decoding lose nothing measurable by it."""

from __future__ import annotations


def enable_tf32() -> bool:
    """TF32 for float32 matmuls and convolutions when the GPU supports it; True if switched on."""
    import torch

    if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] < 8:
        return False
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True
    return True


def pick_device(requested: str = "auto") -> str:
    """`auto`: cuda when available, else cpu; `cuda`/`cuda:N` must exist (one line naming the value if not)."""
    import torch

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {requested}: torch sees no CUDA GPU here (use --device cpu or auto)")
        enable_tf32()
    elif requested != "cpu":
        raise ValueError(f"--device {requested}: expected auto, cpu, cuda or cuda:N")
    return requested
