"""From a PyTorch training run to a certificate.

A bias-free linear network 20 -> 8 -> 6 -> 10 (a bottleneck of 6) is trained on generated
data (a noisy low-rank linear teacher, float32) twice:

1. full batch with L-BFGS: the end point is certified a global minimum as it is;
2. mini-batch Adam for a few epochs, as most training runs go: the stored point is *not* a
   critical point (its relative gradient is far above gtol), and ``--polish`` finds the
   critical point it was heading to, certifies that, and says how far away it is.

The mini-batch run is saved the way training loops save (``{'epoch', 'model_state_dict',
'optimizer_state_dict', 'loss'}``) with the data in a ``torch.save`` file using lower-case
``x``/``y``, and checked with the command line, whose polished point is saved and re-checked.

Run: ``python examples/pytorch_to_certificate.py [OUTDIR]`` (needs ``pip install
'dlcert[torch]'``; a few seconds on a CPU).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import dlcert

WIDTHS = [20, 8, 6, 10]
M = 2000


def make_data(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows layout (m, d), float32: y = x A^T + noise with a rank-7 teacher A."""
    x = torch.randn(M, WIDTHS[0], generator=gen)
    a = torch.randn(WIDTHS[-1], 7, generator=gen) @ torch.randn(7, WIDTHS[0], generator=gen) / 4
    y = x @ a.T + 0.1 * torch.randn(M, WIDTHS[-1], generator=gen)
    return x, y


def make_model(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(*[nn.Linear(i, o, bias=False) for i, o in itertools.pairwise(WIDTHS)])


def train_full_batch(x: torch.Tensor, y: torch.Tensor) -> nn.Sequential:
    model = make_model(1)
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=300, tolerance_grad=1e-9,
                            tolerance_change=1e-12, history_size=50, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    for _ in range(2):
        opt.step(closure)
    return model


def train_mini_batch(
    x: torch.Tensor, y: torch.Tensor, epochs: int = 15
) -> tuple[nn.Sequential, dict[str, object]]:
    model = make_model(2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(3)
    loss = torch.tensor(0.0)
    for _ in range(epochs):
        for idx in torch.randperm(M, generator=gen).split(64):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    checkpoint = {"epoch": epochs, "model_state_dict": model.state_dict(),
                  "optimizer_state_dict": opt.state_dict(), "loss": float(loss.detach())}
    return model, checkpoint


def dlcert_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlcert", *args], capture_output=True, text=True,
                          check=False)


def main(outdir: Path) -> None:
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead (and contention)
    gen = torch.Generator().manual_seed(0)
    x, y = make_data(gen)
    print(f"data: x {tuple(x.shape)}, y {tuple(y.shape)} (rows layout, float32); widths {WIDTHS}")

    full = train_full_batch(x, y)
    cert = dlcert.check(full, x, y)  # the module is probed: forward must be W3 W2 W1 x
    print(f"[full batch, L-BFGS]  verdict {cert.verdict.value}, relative gradient "
          f"{cert.relative_gradient_norm:.2e} (gtol {cert.tolerances.gtol:.1e}), relative gap "
          f"{cert.relative_gap:.2e} (ftol {cert.tolerances.ftol:.1e}); passes --require global: "
          f"{dlcert.passed(cert, 'global')}")
    summary = dlcert.api.loss_summary(cert)
    print(f"  loss {summary['loss']:.6g} = 1/2 sum ||.||^2; MSE {summary['mse']:.6g} "
          f"(torch's mse_loss {float(nn.functional.mse_loss(full(x), y).detach()):.6g})")

    mini, checkpoint = train_mini_batch(x, y)
    stored = dlcert.check(mini, x, y)
    print(f"[mini-batch, Adam]    stored point: verdict {stored.verdict.value}, relative gradient "
          f"{stored.relative_gradient_norm:.2e}")
    start = time.perf_counter()
    pol = dlcert.polish(mini, x, y)
    print(f"  --polish ({pol.method}, {time.perf_counter() - start:.2f} s): polished point "
          f"{pol.verdict.value}; distance {pol.distance:.3e} ({100 * pol.relative_distance:.3g}% "
          f"of ||W||), loss {pol.loss_before:.6g} -> {pol.loss_after:.6g} "
          f"({100 * pol.relative_loss_change:+.3g}% of syy/2)")
    print(f"  {pol.sentence()}")

    outdir.mkdir(parents=True, exist_ok=True)
    ckpt, data, polished = outdir / "ckpt.pt", outdir / "train.pt", outdir / "polished.npz"
    torch.save(checkpoint, ckpt)
    torch.save({"x": x, "y": y}, data)
    proc = dlcert_cli("check", str(ckpt), "--data", str(data), "--polish", "--polish-out",
                      str(polished), "-f", "json")
    report = json.loads(proc.stdout)
    print(f"[CLI] dlcert check ckpt.pt --data train.pt --polish --polish-out polished.npz -f json: "
          f"exit {proc.returncode}, verdict {report['verdict']}, polish.verdict "
          f"{report['polish']['verdict']}, polish.relative_distance "
          f"{report['polish']['relative_distance']:.3g}")
    again = dlcert_cli("check", str(polished), "--data", str(data), "-f", "json")
    print(f"[CLI] dlcert check polished.npz --data train.pt: exit {again.returncode}, verdict "
          f"{json.loads(again.stdout)['verdict']}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
