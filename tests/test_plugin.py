import os
import subprocess
import sys

SCRIPT = """
from nemo.core.classes import common
before = list(common.ALLOWED_TARGET_PREFIXES)
assert not common._is_target_allowed("nemo_encrl.models.encrl_model.EncRLModel")
import nemo_encrl
assert common._is_target_allowed("nemo_encrl.models.encrl_model.EncRLModel")
assert set(common.ALLOWED_TARGET_PREFIXES) - set(before) == {"nemo_encrl."}
assert set(before) <= set(common.ALLOWED_TARGET_PREFIXES)
nemo_encrl.allow_plugin_targets()
assert common.ALLOWED_TARGET_PREFIXES.count("nemo_encrl.") == 1
try:
    common.safe_instantiate({"_target_": "os.system", "command": "true"})
except common.UnsafeTargetError:
    print("OK")
"""


def test_import_allows_exactly_our_prefix_and_keeps_the_check():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("OK")


def test_importing_the_plugin_is_cheap_and_still_registers_its_prefix():
    """`nemo-encrl --help` must not wait seconds for NeMo: the allow-list prefix is added when NeMo loads."""
    import subprocess
    import sys

    code = (
        "import sys, nemo_encrl, nemo_encrl.cli\n"
        "heavy = [m for m in ('torch', 'nemo', 'lightning') if m in sys.modules]\n"
        "from nemo.core.classes import common\n"
        "print(heavy, nemo_encrl.PLUGIN_PREFIX in common.ALLOWED_TARGET_PREFIXES)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[] True"


def test_model_classes_are_reachable_from_the_package():
    import nemo_encrl
    from nemo_encrl.models.encrl_model import EncRLModel
    from nemo_encrl.models.two_pass import TwoPassModel

    assert nemo_encrl.EncRLModel is EncRLModel and nemo_encrl.TwoPassModel is TwoPassModel


def test_temporary_tokenizer_folders_go_with_the_process(tmp_path):
    """Models built in a process read their tokenizer from a temporary folder until saved; the folders must not
    pile up in the temp dir over many runs (they did: hundreds after a few test sessions)."""
    code = ("from nemo_encrl.tokenizer import process_tokenizer_dir\n"
            "d = process_tokenizer_dir('x_tokenizer_')\n"
            "(d / 'tokenizer.model').write_text('m')\n"
            "print(d)\n")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "TMPDIR": str(tmp_path)})  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    made = run.stdout.strip().splitlines()[-1]
    assert made.startswith(str(tmp_path)) and not os.path.exists(made)
