"""The README's commands and snippets are the ones that work."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from typer.main import get_command

from dlcert.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_yaml_snippets_parse_and_match_the_examples() -> None:
    docs = [yaml.safe_load(b) for b in blocks("yaml")]
    assert all(isinstance(d, dict) for d in docs)
    workflow = next(d for d in docs if "jobs" in d)
    example = yaml.safe_load((ROOT / "examples" / "github-actions.yml").read_text())
    runs = [s.get("run", "") for s in workflow["jobs"]["certify"]["steps"]]
    example_runs = [s.get("run", "") for s in example["jobs"]["certify"]["steps"]]
    gate = next(r for r in runs if r.startswith("dlcert check"))
    assert gate in example_runs
    hooks = next(d for d in docs if "repos" in d)
    ids = {h["id"] for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert {h["id"] for h in hooks["repos"][0]["hooks"]} <= ids


def test_shell_snippets_use_real_commands_and_options() -> None:
    cli = get_command(app)
    lines = [ln.split("#")[0].strip() for b in blocks("sh") for ln in b.splitlines()]
    dl = [ln for ln in lines if ln.startswith("dlcert ")]
    assert len(dl) >= 10
    for line in dl:
        words = shlex.split(line)
        sub = cli.commands[words[1]]  # type: ignore[attr-defined]
        known = {opt for p in sub.params for opt in p.opts}
        for w in words[2:]:
            if w.startswith("-"):
                assert w in known, f"{w} is not an option of dlcert {words[1]}"


def test_two_commands_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make demo" in README and "make test" in README
