"""--plot DIR: the figures exist, are valid images, and draw the numbers the certificate holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dlcert.cli import app
from dlcert.io import load_problem
from dlcert.landscape import map_landscape
from dlcert.objective import loss

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

ROOT = Path(__file__).resolve().parent.parent

# sample -> figures expected (a witness for saddles; a Hessian once the gradient test passed)
EXPECTED = {
    "global_full_rank": {"singular-values", "hessian"},
    "strict_saddle": {"witness", "singular-values", "hessian"},
    "non_strict_saddle": {"witness", "singular-values", "hessian"},
    "not_critical": {"singular-values"},
}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] >= 400 and im.size[1] >= 300
        im.load()
    assert path.stat().st_size > 10_000


def assert_svg(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert float(root.get("width", "0pt").removesuffix("pt")) > 100


@pytest.mark.parametrize("sample", list(EXPECTED))
def test_check_figures_for_each_verdict(runner: CliRunner, samples_dir: Path, tmp_path: Path,
                                        sample: str) -> None:
    out = tmp_path / "plots"
    res = runner.invoke(app, ["check", str(samples_dir / f"{sample}.npz"), "--plot", str(out)])
    assert res.exit_code in (0, 3, 4), res.stderr
    files = sorted(out.iterdir())
    assert {p.stem.removeprefix(f"{sample}-") for p in files} == EXPECTED[sample]
    for p in files:
        assert p.suffix == ".png"
        assert_png(p)
        assert f"wrote {p} ({p.stat().st_size} bytes)" in res.stderr


def test_svg_figures(runner: CliRunner, samples_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "svg"
    res = runner.invoke(app, ["check", str(samples_dir / "non_strict_saddle.npz"), "--plot", str(out),
                              "--plot-format", "svg", "-q"])
    assert res.exit_code == 3 and res.stderr == ""
    files = sorted(out.iterdir())
    assert len(files) == 3 and all(p.suffix == ".svg" for p in files)
    for p in files:
        assert_svg(p)


def test_inconclusive_figures(runner: CliRunner, tmp_path: Path) -> None:
    from test_gate import imprecise_bf16

    model, data = imprecise_bf16(tmp_path)
    res = runner.invoke(app, ["check", str(model), "--data", str(data), "--plot",
                              str(tmp_path / "p"), "-f", "json"])
    report = json.loads(res.stdout)
    assert report["verdict"] == "inconclusive" and res.exit_code == 5
    files = sorted((tmp_path / "p").iterdir())
    # The Hessian is drawn only when it was measured (no second-order work once the value
    # route has decided).
    measured = report["hessian"]["method"] != "none"
    expected = {"m-singular-values.png"} | ({"m-hessian.png"} if measured else set())
    assert {p.name for p in files} >= expected
    for p in files:
        assert_png(p)


def test_batch_figures_get_distinct_names(runner: CliRunner, samples_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    copy = tmp_path / "a" / "strict_saddle.npz"
    copy.write_bytes((samples_dir / "strict_saddle.npz").read_bytes())
    res = runner.invoke(app, ["check", str(samples_dir / "strict_saddle.npz"), str(copy),
                              "--plot", str(tmp_path / "p"), "-q"])
    assert res.exit_code == 3
    names = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert len(names) == 6 and "strict_saddle-2-witness.png" in names


def test_witness_curve_is_the_loss_along_the_witness(samples_dir: Path) -> None:
    from dlcert import certify
    from dlcert.render.plots import witness_curve

    for sample in ("strict_saddle", "non_strict_saddle"):
        problem = load_problem(samples_dir / f"{sample}.npz", None, None)
        cert = certify(problem.weights, problem.stats)
        assert cert.witness is not None
        t, f, band, step = witness_curve(cert, problem.weights, problem.stats, points=9)
        assert step == pytest.approx(cert.witness.radius, rel=1e-12)
        base = loss(problem.weights, problem.stats)
        V = [(p - w) / step for p, w in zip(cert.witness.point, problem.weights, strict=True)]
        for ti, fi, bi in zip(t, f, band, strict=True):
            direct = loss([w + ti * v for w, v in zip(problem.weights, V, strict=True)], problem.stats) - base
            assert fi == pytest.approx(direct, rel=1e-8, abs=1e-9 * base + 10 * bi)
        f_step = witness_curve(cert, problem.weights, problem.stats, points=5)[1]
        assert np.interp(step, t, f) < 0 and np.all(band >= 0)
        assert f_step.size == 5


def test_dense_eigenvalues_match_the_certificate(samples_dir: Path) -> None:
    from dlcert import certify
    from dlcert.render.plots import dense_eigenvalues

    problem = load_problem(samples_dir / "strict_saddle.npz", None, None)
    cert = certify(problem.weights, problem.stats)
    eig = dense_eigenvalues(cert, problem.weights, problem.stats)
    assert eig is not None and eig.size == sum(w.size for w in problem.weights)
    assert eig[0] == pytest.approx(cert.hessian.min_eigenvalue, rel=1e-8)
    assert eig[-1] == pytest.approx(cert.hessian.max_eigenvalue, rel=1e-8)


# --- landscape -------------------------------------------------------------------------------


def test_landscape_ladder_figure(runner: CliRunner, samples_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "p"
    res = runner.invoke(app, ["landscape", str(samples_dir / "strict_saddle.npz"), "--widths", "4,2,3,3",
                              "--plot", str(out)])
    assert res.exit_code == 0, res.stderr
    files = sorted(out.iterdir())
    assert [p.name for p in files] == ["strict_saddle-ladder.png"]
    assert_png(files[0])


def test_ladder_marks_l_star_l_ols_classes_and_the_point(samples_dir: Path) -> None:
    from dlcert.render.plots import landscape_figures

    problem = load_problem(samples_dir / "non_strict_saddle.npz", None, None)
    widths = [problem.weights[0].shape[1], *(w.shape[0] for w in problem.weights)]
    ls = map_landscape(problem.stats, widths, rows=6)
    point = loss(problem.weights, problem.stats)
    fig = landscape_figures(ls, point)["ladder"]
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert any(lb.startswith("L* = ") for lb in labels) and any(lb.startswith("L_ols = ") for lb in labels)
    assert "global" in labels and "strict saddle" in labels and "non-strict saddle possible" in labels
    assert any(lb.startswith("the point's loss L(W) = ") for lb in labels)
    ys = {round(float(line.get_ydata()[0]), 9) for line in ax.get_lines() if len(line.get_ydata())}
    assert round(ls.optimal_loss, 9) in ys and round(point, 9) in ys
    assert ax.get_ylabel() and ax.get_xlabel() and ax.get_title()


def test_landscape_of_a_manifest_marks_the_point(runner: CliRunner, samples_dir: Path,
                                                 tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text(f"weights: {samples_dir / 'non_strict_saddle.npz'}\n")
    res = runner.invoke(app, ["landscape", str(tmp_path / "run.yaml"), "--plot", str(tmp_path / "p"),
                              "--plot-format", "svg", "-q"])
    assert res.exit_code == 0, res.stderr
    svg = tmp_path / "p" / "run-ladder.svg"
    assert_svg(svg)
    assert "the point" in svg.read_text()


# --- without matplotlib ------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["check", "samples/strict_saddle.npz"],
                                     ["landscape", "samples/strict_saddle.npz", "--widths", "4,3,3"]])
def test_missing_matplotlib_is_one_line(tmp_path: Path, command: list[str]) -> None:
    code = ("import sys; sys.modules['matplotlib'] = None; from dlcert.cli import main; "
            f"sys.argv = ['dlcert', *{command!r}, '--plot', {str(tmp_path / 'p')!r}]; main()")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == "dlcert: error: --plot needs matplotlib: pip install 'dlcert[plot]'\n"
    assert proc.stdout == "" and not (tmp_path / "p").exists()


def test_iterative_spectrum_draws_the_measured_extremes(samples_dir: Path, tmp_path: Path) -> None:
    from dlcert import certify
    from dlcert.render.plots import PlotFormat, check_figures, dense_eigenvalues, save_figures

    problem = load_problem(samples_dir / "strict_saddle.npz", None, None)
    cert = certify(problem.weights, problem.stats, dense_limit=5, n_extremes=2)
    assert cert.hessian.method != "dense"
    assert dense_eigenvalues(cert, problem.weights, problem.stats) is None
    figs = check_figures(cert, problem.weights, problem.stats)
    ax = figs["hessian"].axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert "lambda_min" in ticks and "lambda_max" in ticks and "computed extremes" in ax.get_title()
    density = figs["hessian"].axes[1]
    assert "estimate" in density.get_title() and "ESTIMATE" in density.get_legend_handles_labels()[1][0]
    ys = [float(line.get_ydata()[0]) for line in ax.get_lines() if line.get_marker() == "o"]
    assert cert.hessian.min_eigenvalue in ys
    for p in save_figures(figs, tmp_path, "it", PlotFormat.PNG):
        assert_png(p)


def test_slq_is_a_quadrature_of_the_spectrum(samples_dir: Path) -> None:
    """Ritz nodes lie in the spectrum's interval, weights sum to 1, and the first moment is exactly
    the mean of the probes' Rayleigh quotients (Lanczos quadrature is exact for v^T H v)."""
    from dlcert.hessian import dense_hessian
    from dlcert.objective import PointCache
    from dlcert.render.plots import slq_nodes

    problem = load_problem(samples_dir / "strict_saddle.npz", None, None)
    H = dense_hessian(problem.stats, PointCache.at(problem.weights, problem.stats))
    H = 0.5 * (H + H.T)
    lam = np.linalg.eigvalsh(H)
    n = H.shape[0]
    nodes, w = slq_nodes(lambda X: H @ X, n, probes=3, steps=8, seed=5)
    scale = float(np.max(np.abs(lam)))
    assert np.all(nodes >= lam[0] - 1e-8 * scale) and np.all(nodes <= lam[-1] + 1e-8 * scale)
    assert w.sum() == pytest.approx(1.0, rel=1e-12) and np.all(w >= 0)
    V = np.random.default_rng(5).choice([-1.0, 1.0], size=(n, 3)) / np.sqrt(n)
    assert float(w @ nodes) == pytest.approx(float(np.mean(np.einsum("ij,ij->j", V, H @ V))),
                                             rel=1e-9, abs=1e-9 * scale)
    # with as many steps as the dimension, the extreme nodes are the extreme eigenvalues
    nodes, _ = slq_nodes(lambda X: H @ X, n, probes=2, steps=n, seed=1)
    assert nodes.min() == pytest.approx(lam[0], rel=1e-6) and nodes.max() == pytest.approx(lam[-1], rel=1e-6)


def test_unwritable_plot_directory_is_an_error_after_the_report(runner: CliRunner, samples_dir: Path,
                                                                tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = runner.invoke(app, ["check", str(samples_dir / "strict_saddle.npz"), "--plot", str(blocker),
                              "-f", "json"])
    assert res.exit_code == 2  # input/output error outranks the saddle's 3
    assert json.loads(res.stdout)["verdict"] == "strict_saddle"  # the verdict is still reported
    assert res.stderr.startswith(f"dlcert: error: {blocker}: cannot write the figures")


@pytest.mark.parametrize("command", ["check", "landscape"])
def test_help_names_the_extra(runner: CliRunner, command: str) -> None:
    res = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert "pip install 'dlcert[plot]'" in " ".join(res.stdout.split())
