"""Mutation runs: mutmut over one module at a time, against that module's own unit tests.

    python tools/mutation.py                  # every module in MODULES, then the table
    python tools/mutation.py verdict changes  # only these
    python tools/mutation.py wire --survivors # and print the diff of every mutant that lived

Each module is mutated in a scratch copy of the project (``build/mutation/<module>/``), with
only its own test files selected, so a score says what those tests pin down and nothing else
hides behind an end-to-end test. A mutant counts as killed when a test fails or times out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
BUILD = PROJECT / "build" / "mutation"

# module name -> (source file, its unit tests)
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "verdict": ("monitor/verdict.py", ("tests/test_verdict.py",)),
    "changes": ("monitor/changes.py", ("tests/test_changes.py",)),
    "snapshot": ("monitor/snapshot.py", ("tests/test_snapshot.py",)),
    "names": ("monitor/names.py", ("tests/test_names.py",)),
    "wire": ("monitor/probe/wire.py", ("tests/test_wire.py",)),
}


@dataclass(frozen=True)
class Score:
    """What one module's mutation run found."""

    module: str
    total: int
    killed: int
    survivors: tuple[str, ...]

    @property
    def percent(self) -> float:
        return 100.0 * self.killed / self.total if self.total else 0.0


def _config(source: str, tests: tuple[str, ...]) -> str:
    selection = ", ".join(json.dumps(t) for t in tests)
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["monitor"]\n'
        f"only_mutate = [{json.dumps(source)}]\n"
        f"pytest_add_cli_args_test_selection = [{selection}]\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
    )


def _scratch(module: str, source: str, tests: tuple[str, ...]) -> Path:
    """Return a fresh copy of the project to mutate ``source`` in."""
    where = BUILD / module
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(PROJECT / "monitor", where / "monitor", ignore=ignore)
    shutil.copytree(PROJECT / "tests", where / "tests", ignore=ignore)
    pyproject = (PROJECT / "pyproject.toml").read_text(encoding="utf-8")
    (where / "pyproject.toml").write_text(pyproject + _config(source, tests), encoding="utf-8")
    return where


def _mutmut(where: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        cwd=where,
        capture_output=True,
        text=True,
    )
    if check and done.returncode != 0:
        raise SystemExit(f"mutmut {' '.join(args)} failed in {where}:\n{done.stdout}{done.stderr}")
    return done.stdout


def run_module(module: str, *, children: int, survivors: bool) -> Score:
    """Mutate one module against its own tests and return its score."""
    source, tests = MODULES[module]
    where = _scratch(module, source, tests)
    _mutmut(where, "run", "--max-children", str(children), check=False)
    _mutmut(where, "export-cicd-stats")
    stats = json.loads((where / "mutants" / "mutmut-cicd-stats.json").read_text())
    lived = tuple(
        line.strip().split(":")[0]
        for line in _mutmut(where, "results").splitlines()
        if line.strip().endswith(("survived", "no tests"))
    )
    if survivors:
        for name in lived:
            print(_mutmut(where, "show", name, check=False))
    killed = stats["killed"] + stats["timeout"]
    return Score(module, stats["total"], killed, lived)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help=f"of: {', '.join(MODULES)} (default: all)")
    parser.add_argument("--survivors", action="store_true", help="print each survivor's diff")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once")
    args = parser.parse_args()
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module {unknown[0]!r}; known: {', '.join(MODULES)}")
    scores = [
        run_module(m, children=args.children, survivors=args.survivors)
        for m in (args.modules or list(MODULES))
    ]
    print("| module | mutants | killed | score |")
    print("|---|---|---|---|")
    for s in scores:
        print(f"| {s.module} | {s.total} | {s.killed} | {s.percent:.1f} % |")
    for s in scores:
        if s.survivors:
            print(f"{s.module}: {len(s.survivors)} survived: {' '.join(s.survivors)}")


if __name__ == "__main__":
    main()
