"""examples/pytorch_to_certificate.py runs and says what its docstring promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.example
def test_pytorch_to_certificate(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    script = ROOT / "examples" / "pytorch_to_certificate.py"
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)],
                          capture_output=True, text=True, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    full = next(line for line in lines if line.startswith("[full batch"))
    assert "verdict global_minimum" in full and "passes --require global: True" in full
    stored = next(line for line in lines if line.startswith("[mini-batch"))
    assert "stored point: verdict not_critical" in stored
    assert any("polished point global_minimum" in line for line in lines)
    cli = [line for line in lines if line.startswith("[CLI]")]
    assert "exit 4, verdict not_critical, polish.verdict global_minimum" in cli[0]
    assert "exit 0, verdict global_minimum" in cli[1]
    assert (tmp_path / "polished.npz").exists() and (tmp_path / "ckpt.pt").exists()
