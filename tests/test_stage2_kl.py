"""Stage 2 with a KL term to the teacher's posteriors: the same loss from the teacher cache as online,
a plain EncDecCTCModelBPE saved, a teacher with another vocabulary refused."""

import pytest
import torch

from nemo_encrl.cache.builder import build_teacher_cache
from nemo_encrl.config import load_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tiny_ctc_nemo, tiny_corpus, tmp_path_factory):
    from conftest import tiny_encrl_overrides

    work = tmp_path_factory.mktemp("kl_cache")
    return build_teacher_cache(load_config("encrl", "encrl_clip_mse", [
        *tiny_encrl_overrides(tiny_ctc_nemo, tiny_corpus, work), f"model.teacher.cache={work}/cache",
        "teacher_cache.dtype=float32"]))  # fmt: skip


def _cfg(tiny_corpus, tmp_path, stage1, teacher, *extra):
    from conftest import tiny_finetune_overrides

    return load_config("finetune", "ctc_finetune", [*tiny_finetune_overrides(tiny_corpus, tmp_path, "stage1", stage1, teacher),
                                                    "init.depths=[2]", "distillation.weight=0.5",
                                                    f"distillation.teacher={teacher}", *extra])  # fmt: skip


def _student(cfg):
    from nemo_encrl.finetune import distillation
    from nemo_encrl.student import student_from_stage1

    from omegaconf import OmegaConf

    model_class = distillation(cfg)
    OmegaConf.resolve(cfg)
    return student_from_stage1(cfg.init.stage1, 2, "stage1", cfg.model, model_class=model_class)


def test_cached_kl_equals_online_kl(cache, tiny_encrl_nemo, tiny_ctc_nemo, tiny_corpus, tmp_path):
    model = _student(_cfg(tiny_corpus, tmp_path, tiny_encrl_nemo, tiny_ctc_nemo, f"distillation.cache={cache}"))
    model.eval()  # no dither, no SpecAugment: both passes see the same student features
    batch = next(iter(model._train_dl))
    assert len(batch) == 5  # the cache's arrays ride along
    with torch.no_grad():
        ctc_c, kl_c = model.kl_step_losses(batch)
        ctc_o, kl_o = model.kl_step_losses(batch[:4])
    assert float(kl_c) > 0 and float(kl_c) == pytest.approx(float(kl_o), rel=1e-4)
    assert float(ctc_c) == pytest.approx(float(ctc_o), rel=1e-6)


def test_kl_student_trains_and_saves_plain(cache, tiny_encrl_nemo, tiny_ctc_nemo, tiny_corpus, tmp_path):
    from nemo.collections.asr.models import ASRModel, EncDecCTCModelBPE

    from nemo_encrl.finetune import finetune_students

    results = finetune_students(_cfg(tiny_corpus, tmp_path, tiny_encrl_nemo, tiny_ctc_nemo, f"distillation.cache={cache}"))
    restored = ASRModel.restore_from(results[2]["nemo"], map_location="cpu")
    assert type(restored) is EncDecCTCModelBPE
    assert "teacher" not in restored.cfg and "distillation" not in restored.cfg
    assert not [k for k in restored.state_dict() if k.startswith("teacher.")]
    assert len(restored.encoder.layers) == 2


def test_teacher_with_other_vocabulary_is_refused(tiny_encrl_nemo, tiny_corpus, tmp_path):
    from nemo_encrl.config import REPO_ROOT
    from nemo_encrl.models.ctc_teacher_kl import StudentKLError

    with pytest.raises(StudentKLError, match=r"demo_teacher.nemo has 257 output classes, the student 41"):
        _student(_cfg(tiny_corpus, tmp_path, tiny_encrl_nemo, REPO_ROOT / "models" / "demo_teacher.nemo"))


def test_stage1_student_needs_its_teacher_named(tiny_encrl_nemo, tiny_ctc_nemo, tiny_corpus, tmp_path):
    from nemo_encrl.student import StudentError

    cfg = _cfg(tiny_corpus, tmp_path, tiny_encrl_nemo, tiny_ctc_nemo, "distillation.teacher=null")
    with pytest.raises(StudentError, match="needs distillation.teacher: the teacher .nemo"):
        _student(cfg)
