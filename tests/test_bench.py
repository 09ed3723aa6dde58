"""Smoke test of bench/run.py: a tiny run prints every figure and target; speed is not judged."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "run.py"

FIGURES = [
    ("zone_write", "s"),
    ("lab_start", "s"),
    ("warm_up", "s"),
    ("engine_queries", "queries"),
    ("engine_wall", "s"),
    ("engine_qps", "queries/s"),
    ("engine_cpu_per_query", "us/query"),
    ("engine_peak_rss", "MiB"),
    ("e2e_wall", "min"),
    ("git_changes", "disappeared"),
    ("git_day2_wall", "s"),
    ("git_bundle", "KB"),
    ("git_loose", "KB"),
    ("dnsperf_qps", "queries/s"),
    ("dnsperf_lost", "%"),
    ("dnsperf_all_qps", "queries/s"),
    ("naive_qps", "queries/s"),
    ("rate_max_window", "queries in 1 s"),
    ("rate_mean", "queries/s"),
    ("rate_max_window_ratio", "x R"),
    ("rate_mean_ratio", "x R"),
    ("ratio_engine_naive", "x"),
    ("ratio_engine_dnsperf", "x"),
    ("ratio_engine_dnsperf_all", "x"),
    ("e2e_minutes_1m", "min"),
]
TARGETS = [
    "ratio_engine_naive",
    "ratio_engine_dnsperf",
    "e2e_minutes_1m",
    "engine_peak_rss",
    "git_bundle",
    "rate_max_window_ratio",
    "rate_mean_ratio",
]
NUMBER = r"-?\d+(?:\.\d+)?"


def load_bench() -> ModuleType:
    if "bench_run" in sys.modules:
        return sys.modules["bench_run"]
    spec = importlib.util.spec_from_file_location("bench_run", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up in sys.modules while the class is built.
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def output() -> str:
    """The output of one tiny bench run; fails (with the output) unless it exits 0."""
    argv = [sys.executable, str(BENCH), "--sizes", "300", "--sample-seconds", "1"]
    argv += ["--rate", "400", "--rate-seconds", "1", "--changes", "20"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"bench exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("name", "unit"), FIGURES)
def test_every_figure_is_printed(output: str, name: str, unit: str) -> None:
    pattern = rf"^{name}: {NUMBER} {re.escape(unit)}(?:\s|$)"
    assert re.search(pattern, output, re.MULTILINE), f"no {name!r} line in:\n{output}"


@pytest.mark.slow
@pytest.mark.parametrize("name", TARGETS)
def test_every_target_is_judged(output: str, name: str) -> None:
    assert re.search(rf"^target {name}: {NUMBER} .* (PASS|FAIL)  \(", output, re.MULTILINE), output


@pytest.mark.slow
def test_the_run_found_what_the_lab_holds(output: str) -> None:
    # 300 names, 2 types, 5 resolvers: at least 3,000 queries; day 2 deleted 20 names.
    queries = re.search(r"^engine_queries: (\d+) ", output, re.MULTILINE)
    assert queries is not None and int(queries.group(1)) >= 3000
    assert re.search(r"^git_changes: 20 disappeared", output, re.MULTILINE)
    assert re.search(r"^figure +300$", output, re.MULTILINE)


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([], 0),
        ([0.0], 1),
        ([0.0, 0.5, 0.999], 3),
        ([0.0, 0.5, 1.0], 2),  # the window is half-open: [t, t + 1)
        ([0.0, 0.9, 1.0, 1.1, 1.2, 3.0], 4),
    ],
)
def test_max_window(times: list[float], expected: int) -> None:
    assert load_bench().max_window(times) == expected


@pytest.mark.parametrize(("size", "changes"), [(300, 20), (10_000, 100), (1_000_000, 100)])
def test_deleted_names_are_distinct_and_no_alias(size: int, changes: int) -> None:
    bench = load_bench()
    names = bench.deleted_names(size, changes)
    indices = [int(name[1:].split(".")[0]) for name in names]
    assert len(set(names)) == changes
    assert all(0 <= i < size and i % 1000 < 998 for i in indices)


def test_top_functions_adds_up_the_lines_of_each_leaf_function() -> None:
    folded = "\n".join(
        [
            "main (m.py:1);readable (probe.py:762) 30",
            "main (m.py:1);readable (probe.py:790);send (probe.py:734) 50",
            "main (m.py:1);readable (probe.py:770) 10",
            "main (m.py:1);<lambda> (<string>:1) 10",
            "py-spy> a line that is no stack",
        ]
    )
    assert load_bench().top_functions(folded, 2) == [
        (50.0, "send (probe.py)"),
        (40.0, "readable (probe.py)"),
    ]
