"""bench/gpu_checks.sh cannot fail on the GPU machine for a missing package: its smoke mode
runs in an interpreter that sees only the GPU image's packages (bench/gpu_image/) and the
wheels the script carries."""

import os
import subprocess
import sys
from pathlib import Path

from tests.slow import slow_unless_asked

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "gpu_image"))
import make_env  # type: ignore[import-not-found]  # noqa: E402  (found through the sys.path line above, as the image build runs it)


def _smoke(command: str, out: Path, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "GPU_CHECKS_SMOKE": "1", "OUT": str(out), "PYTHON": sys.executable}
    return subprocess.run(["bash", "bench/gpu_checks.sh", command], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_everything_the_checks_import_is_on_the_gpu_image_or_among_the_wheels(tmp_path):
    done = _smoke("imports", tmp_path, 300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imports ok" in (tmp_path / "env.txt").read_text()


def test_the_image_only_interpreter_refuses_what_the_image_lacks(tmp_path):
    """Without the wheels, ptflops (bench/train_step.py's FLOP count) is missing, as it is
    on the GPU image; packages of this project's web side (Django) are missing too."""
    python = make_env.build(tmp_path / "env", [])
    for module in ("ptflops", "diffusers", "django"):
        done = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and f"No module named '{module}'" in done.stderr
    done = subprocess.run([str(python), "-c", "import torch, transformers, accelerate, numpy"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@slow_unless_asked("about 5 minutes on 2 busy cores")
def test_the_whole_smoke_run_passes_in_the_image_only_interpreter(tmp_path):
    done = _smoke("run", tmp_path, 1800)
    assert done.returncode == 0 and "all checks passed" in done.stdout, done.stdout[-4000:] + done.stderr[-2000:]
    for table in ("train_step-eager.txt", "train_step-compile.txt", "train_throughput-demo.txt"):
        assert (tmp_path / table).is_file(), table
