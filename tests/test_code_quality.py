"""The team's code standards, checked with every test run: lint, types, layers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_is_clean() -> None:
    proc = run(str(BIN / "ruff"), "check", "src", "tests", "examples", "bench")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_layers_are_respected() -> None:
    proc = run(str(BIN / "lint-imports"), "--no-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_mypy_is_clean() -> None:
    proc = run(str(BIN / "mypy"), "src/ratline")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_module_has_a_docstring() -> None:
    import ast

    missing = []
    for path in sorted((REPO / "src" / "ratline").rglob("*.py")):
        tree = ast.parse(path.read_text())
        if not ast.get_docstring(tree):
            missing.append(str(path.relative_to(REPO)))
    assert not missing, f"modules without a docstring: {missing}"


def test_no_module_is_too_long() -> None:
    long = []
    for path in sorted((REPO / "src" / "ratline").rglob("*.py")):
        lines = path.read_text().count("\n")
        if lines > 600:
            long.append(f"{path.relative_to(REPO)} ({lines} lines)")
    assert not long, f"split these along their seams: {long}"
