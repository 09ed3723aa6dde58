"""Benchmark of registry-monitor at scale (issue 6): engine speed, git growth, and their limits.

Usage: python bench/run.py --sizes 10000,100000,1000000 [--repeat 3]
       [--only engine,naive,dnsperf,e2e,git,rate] [--profile]

Every figure is printed as ``name: value unit`` (medians where repeated), then the ratios with
their targets (PASS/FAIL), then one table. All traffic stays on 127.0.0.x; every server and
child process is stopped at exit. Exit status: 0 when every requested figure was measured, 1
when the bench itself broke (a server did not start, a run failed or overran its time bound),
2 for bad arguments. A FAIL against a target is a result, not a breakage: the exit is still 0.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime
import itertools
import multiprocessing
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from realdns import DNSLab, Endpoint, find_binary  # noqa: E402

FIGURES = ("engine", "e2e", "git", "dnsperf", "naive", "rate")
DAY_1 = "2026-01-01"
DAY_2 = "2026-01-02"
VANTAGE = "bench"
RECORD_TYPES = ("A", "AAAA")
CANARY = "example.com"
# Long TTLs (and negative TTLs) so nothing a warm-up cached expires during a long run.
TTL = 86400
# Caches big enough for a million names with A, AAAA and the NODATA answers, in one thread:
# with 256m and 512m a million names did not fit, and each unbound spent a quarter of a core
# asking NSD again what it had evicted, which the engine figure then measured. Socket buffers
# as NLnet Labs' "Howto Optimise" sets them, to lose no query in a burst: the kernel's default
# (208 KB) overflowed when hundreds of queries arrived at once, and each query lost then cost
# a whole timeout at the end of a run.
UNBOUND_EXTRA = """
num-threads: 1
msg-cache-size: 1g
rrset-cache-size: 1g
so-rcvbuf: 4m
so-sndbuf: 4m
cache-min-ttl: 3600
cache-max-negative-ttl: 86400
"""
NATIONALS = ("nat-a", "nat-b")
CONTROLS = ("ctl-a", "ctl-b", "ctl-c")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "registry-monitor bench",
    "GIT_AUTHOR_EMAIL": "bench@registry-monitor.invalid",
    "GIT_COMMITTER_NAME": "registry-monitor bench",
    "GIT_COMMITTER_EMAIL": "bench@registry-monitor.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


class BenchError(RuntimeError):
    """The bench itself broke: a server, a run or a tool did not do its part."""


# --- targets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A figure's goal: ``op`` is ">=", "<=" or "<"."""

    figure: str
    op: str
    bound: float
    text: str

    def met(self, value: float) -> bool:
        """Return whether ``value`` meets the target."""
        if self.op == ">=":
            return value >= self.bound
        if self.op == "<=":
            return value <= self.bound
        return value < self.bound


TARGETS = (
    Target("ratio_engine_naive", ">=", 10, "engine qps / naive qps >= 10"),
    Target("ratio_engine_dnsperf", ">=", 0.25, "engine qps / dnsperf qps >= 0.25"),
    Target("e2e_minutes_1m", "<", 15, "1M e2e minutes < 15 (projected linearly below 1M)"),
    Target("engine_peak_rss", "<", 1024, "peak MiB < 1024"),
    Target("git_bundle", "<", 200, "git KB for 100 changes < 200"),
    Target("rate_max_window_ratio", "<=", 1.00, "rate max 1-s window / R <= 1.00"),
    Target("rate_mean_ratio", ">=", 0.95, "rate mean / R >= 0.95"),
)


# --- results ---------------------------------------------------------------------------------


@dataclass
class Results:
    """Figures of one size: name -> (samples, unit); printed as medians."""

    size: int
    samples: dict[str, list[float]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: float, unit: str, note: str = "") -> None:
        self.samples.setdefault(name, []).append(value)
        self.units[name] = unit
        if note:
            self.notes[name] = note

    def value(self, name: str) -> float | None:
        """Return the median of a figure's samples, or None when it was not measured."""
        values = self.samples.get(name)
        return statistics.median(values) if values else None


def fmt(value: float | None) -> str:
    """Return ``value`` with a precision that suits its size ("-" for None)."""
    if value is None:
        return "-"
    size = abs(value)
    if size >= 1000 or (value == int(value) and size >= 10):
        return f"{value:.0f}"
    if size >= 100:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def say(text: str) -> None:
    """Print a progress line (prefixed "# ", so figure lines stay easy to grep)."""
    print(f"# {text}", flush=True)


def print_figure(results: Results, name: str) -> None:
    value = results.value(name)
    if value is None:
        return
    samples = results.samples[name]
    extra = ""
    if len(samples) > 1:
        extra = f"  (median of {len(samples)}: {', '.join(fmt(s) for s in samples)})"
    note = f"  [{results.notes[name]}]" if name in results.notes else ""
    print(f"{name}: {fmt(value)} {results.units[name]}{extra}{note}", flush=True)


# --- child processes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildRun:
    """What one child process cost: wall seconds, CPU seconds, peak RSS (KiB), exit code."""

    wall: float
    cpu: float
    maxrss_kib: int
    code: int


def run_child(
    argv: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float, log: Path
) -> ChildRun:
    """Run ``argv`` to its end (killed after ``timeout`` s) and return what it cost.

    os.wait4 gives this child's own rusage (with the descendants it waited for, such as git),
    untouched by dnsperf or the servers; RUSAGE_CHILDREN's ru_maxrss is a maximum over every
    child of the bench, so it cannot be taken as a difference. Raises BenchError on timeout.
    """
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        start = time.monotonic()
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        # Ctrl-C reaches the bench only (the child has a session of its own): end the child too.
        kill()
        os.wait4(process.pid, 0)
        process.returncode = -signal.SIGKILL
        raise
    finally:
        timer.cancel()
    wall = time.monotonic() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if killed.is_set():
        raise BenchError(f"{argv[0]} ... {argv[-1]} overran its bound of {timeout:.0f} s ({log})")
    return ChildRun(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, process.returncode)


def git(repo: Path, *args: str) -> str:
    """Return the stdout of a git command in ``repo``; raise BenchError when it fails."""
    done = subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"git {' '.join(args)} failed in {repo}: {done.stderr.strip()}")
    return done.stdout


# --- the lab -----------------------------------------------------------------------------------


def name_of(i: int) -> str:
    return f"n{i}.bench"


def is_cname(i: int) -> bool:
    # One name in a thousand is an alias of the name before it (never of another alias).
    return i % 1000 == 999


def write_zone(path: Path, size: int) -> None:
    """Write the root zone of ``size`` names to ``path``, streaming in chunks."""
    soa = f". {TTL} IN SOA ns.lab-root. hostmaster.lab-root. 1 1800 900 604800 {TTL}\n"
    with path.open("w", encoding="ascii", buffering=1 << 20) as out:
        out.write(f"$TTL {TTL}\n{soa}. {TTL} IN NS ns.lab-root.\n")
        out.write(f"ns.lab-root. {TTL} IN A 127.0.0.1\n")
        out.write(f"{CANARY}. {TTL} IN A 93.184.216.34\n")
        for start in range(0, size, 20000):
            lines = []
            for i in range(start, min(size, start + 20000)):
                owner = f"{name_of(i)}."
                if is_cname(i):
                    lines.append(f"{owner} CNAME {name_of(i - 1)}.\n")
                    continue
                # Globally routable addresses, so that no bogon rule takes part.
                lines.append(f"{owner} A 44.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}\n")
                if i % 2 == 0:
                    lines.append(
                        f"{owner} AAAA 2a00:1450:{(i >> 16) & 0xFFFF:x}:{i & 0xFFFF:x}::1\n"
                    )
            out.write("".join(lines))


def write_lines(path: Path, size: int, line: Callable[[int], str]) -> None:
    with path.open("w", encoding="ascii", buffering=1 << 20) as out:
        for start in range(0, size, 20000):
            out.write("".join(line(i) for i in range(start, min(size, start + 20000))))


def deleted_names(size: int, changes: int) -> list[str]:
    """Return the names the nationals delete on day 2: ``changes`` of them, spread evenly.

    Never an alias nor the target of one, since a deleted target would take its alias along.
    """
    step = max(1, size // changes)
    chosen: list[int] = []
    taken: set[int] = set()
    for k in range(min(changes, size)):
        i = k * step + step // 2
        for candidate in itertools.chain(range(i, -1, -1), range(i + 1, size)):
            if candidate % 1000 < 998 and candidate not in taken:
                break
        else:
            raise BenchError(f"cannot pick {changes} names of {size} to delete")
        chosen.append(candidate)
        taken.add(candidate)
    return [name_of(i) for i in chosen]


@dataclass
class Lab:
    """One size's servers: NSD and the 2 national + 3 control unbounds."""

    lab: DNSLab
    nsd: Endpoint
    resolvers: dict[str, Endpoint]


def start_lab(lab: DNSLab, zone: Path, size: int) -> Lab:
    nsd = lab.start_nsd(zone_file=zone, start_timeout=max(120.0, size / 2000))
    resolvers = {name: lab.start_unbound(name, extra=UNBOUND_EXTRA) for name in NATIONALS}
    resolvers.update({name: lab.start_unbound(name, extra=UNBOUND_EXTRA) for name in CONTROLS})
    return Lab(lab, nsd, resolvers)


def write_config(path: Path, resolvers: dict[str, Endpoint], rate: float, names: str) -> None:
    def entry(name: str) -> dict[str, Any]:
        ep = resolvers[name]
        return {"name": name, "address": ep.address, "port": ep.port, "rate": rate}

    config = {
        "vantage": VANTAGE,
        "record_types": list(RECORD_TYPES),
        "timeout": 2,
        "attempts": 3,
        "canaries": [CANARY],
        "strategy": "full",  # every name at all five: what the targets are about
        "resolvers": {
            "national": [entry(n) for n in resolvers if n.startswith("nat")],
            "control": [entry(n) for n in resolvers if not n.startswith("nat")],
        },
        "watchlist_files": [names],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def dnsperf_args(ep: Endpoint, queries: Path, clients: int = 8) -> list[str]:
    dnsperf = find_binary("dnsperf")
    if dnsperf is None:
        raise BenchError("dnsperf is not installed: apt-get install -y dnsperf")
    return [dnsperf, "-s", ep.address, "-p", str(ep.port), "-d", str(queries), "-c", str(clients)]


def warm_up(lab: Lab, queries: Path, size: int, log: Path) -> float:
    """Ask every resolver every query once (dnsperf -n 1, all at once); return the seconds."""
    bound = 60 + size * len(RECORD_TYPES) / 2000
    start = time.monotonic()
    with log.open("ab") as out:
        processes = [
            subprocess.Popen(
                [*dnsperf_args(ep, queries), "-n", "1", "-q", "200", "-l", f"{bound:.0f}"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            for ep in lab.resolvers.values()
        ]
        try:
            for process in processes:
                process.wait(timeout=max(1.0, bound + 30 - (time.monotonic() - start)))
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    if any(p.returncode != 0 for p in processes):
        raise BenchError(f"dnsperf warm-up failed (see {log})")
    return time.monotonic() - start


# --- figures ---------------------------------------------------------------------------------


@dataclass
class Context:
    """What the figures of one size share."""

    args: argparse.Namespace
    size: int
    work: Path
    lab: Lab
    names: Path
    queries: Path
    env: dict[str, str]
    log: Path
    repo: Path | None = None  # the repository of the last day-1 run


def monitor_run(
    ctx: Context, config: Path, repo: Path, date: str
) -> tuple[ChildRun, dict[str, Any]]:
    """Run ``python -m monitor run`` once; return its cost and its run.yaml."""
    argv = monitor_argv(config, repo, date)
    timeout = ctx.args.run_timeout or 300 + ctx.size * 0.004
    child = run_child(argv, cwd=ctx.work, env=ctx.env, timeout=timeout, log=ctx.log)
    if child.code != 0:
        raise BenchError(f"monitor run exited {child.code} (see {ctx.log})")
    run_yaml = repo / "snapshots" / VANTAGE / "run.yaml"
    fields = yaml.safe_load(run_yaml.read_text())
    if not isinstance(fields, dict) or not isinstance(fields.get("queries"), int):
        raise BenchError(f"{run_yaml} has no queries count")
    return child, fields


def monitor_argv(config: Path, repo: Path, date: str) -> list[str]:
    run = ["run", "--repo", str(repo), "--date", date]
    return [sys.executable, "-m", "monitor", "--config", str(config), *run]


def new_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    return path


def figure_engine(ctx: Context, res: Results, repeat: int) -> None:
    """engine and e2e: ``--repeat`` day-1 runs, each in a fresh repository.

    With ``--baseline DIR``, each run is paired with one of the checkout in DIR, just before
    it, against the same lab: the two meet the same machine at the same moment.
    """
    config = ctx.work / "config.yaml"
    write_config(config, ctx.lab.resolvers, 0, ctx.names.name)
    baseline: Path | None = ctx.args.baseline
    for n in range(repeat):
        if baseline is not None:
            env = {**ctx.env, "PYTHONPATH": str(baseline)}
            before = dataclasses.replace(ctx, env=env)
            repo = new_repo(ctx.work / f"baseline-{n + 1}")
            child, fields = monitor_run(before, config, repo, DAY_1)
            queries = int(fields["queries"])
            say(f"baseline run {n + 1}/{repeat}: {queries} queries in {child.wall:.2f} s")
            res.add("baseline_engine_qps", queries / child.wall, "queries/s", str(baseline))
            res.add("baseline_cpu_per_query", child.cpu / queries * 1e6, "us/query")
            res.add("baseline_peak_rss", child.maxrss_kib / 1024, "MiB")
            shutil.rmtree(repo)
        repo = new_repo(ctx.work / f"repo-{n + 1}")
        child, fields = monitor_run(ctx, config, repo, DAY_1)
        queries = int(fields["queries"])
        verdicts = fields.get("verdicts", {})
        say(
            f"engine run {n + 1}/{repeat}: {queries} queries in {child.wall:.2f} s, "
            f"verdicts {verdicts}"
        )
        if verdicts.get("present", 0) != ctx.size:
            raise BenchError(f"day 1 should find all {ctx.size} names present: {verdicts}")
        res.add("engine_queries", queries, "queries")
        res.add("engine_wall", child.wall, "s")
        res.add("engine_qps", queries / child.wall, "queries/s")
        res.add("engine_cpu_per_query", child.cpu / queries * 1e6, "us/query")
        res.add("engine_peak_rss", child.maxrss_kib / 1024, "MiB")
        res.add("e2e_wall", child.wall / 60, "min", "resolve + snapshot + commit")
        ctx.repo = repo


def figure_profile(ctx: Context) -> None:
    """One more day-1 run, sampled by py-spy; print the functions its time went to."""
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        raise BenchError("py-spy is not installed: pip install py-spy")
    config = ctx.work / "config.yaml"
    write_config(config, ctx.lab.resolvers, 0, ctx.names.name)
    repo = new_repo(ctx.work / "repo-profile")
    raw = ctx.work / "profile.txt"
    argv = [pyspy, "record", "--rate", "200", "--format", "raw", "--output", str(raw), "--"]
    argv += monitor_argv(config, repo, DAY_1)
    timeout = ctx.args.run_timeout or 300 + ctx.size * 0.004
    child = run_child(argv, cwd=ctx.work, env=ctx.env, timeout=timeout * 2, log=ctx.log)
    if child.code != 0 or not raw.exists():
        raise BenchError(f"py-spy record exited {child.code} (see {ctx.log})")
    say(f"profile of one run ({child.wall:.1f} s under py-spy; samples in {raw}):")
    for share, function in top_functions(raw.read_text(), PROFILE_LINES):
        print(f"profile: {share:5.1f} % {function}", flush=True)


PROFILE_LINES = 15


def top_functions(folded: str, count: int) -> list[tuple[float, str]]:
    """Return the ``count`` functions with the most samples of their own, with their share.

    ``folded`` is py-spy's raw output: one stack a line, frames ``function (file:line)``
    joined by ``;``, then the number of samples. Lines of one function are added up.
    """
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        leaf = stack.rpartition(";")[2]
        own[re.sub(r":\d+\)$", ")", leaf)] += int(samples)
        total += int(samples)
    return [(100.0 * n / total, name) for name, n in own.most_common(count)]


def figure_git(ctx: Context, res: Results) -> None:
    """git: a second day on which the nationals delete ``--changes`` names."""
    config = ctx.work / "config.yaml"
    if ctx.repo is None:
        write_config(config, ctx.lab.resolvers, 0, ctx.names.name)
        ctx.repo = new_repo(ctx.work / "repo-git")
        say("git: day 1 (not measured)")
        monitor_run(ctx, config, ctx.repo, DAY_1)
    changes = min(ctx.args.changes, ctx.size // 2)
    zones = {f"{name}.": "always_nxdomain" for name in deleted_names(ctx.size, changes)}
    lab = ctx.lab
    restart = getattr(lab.lab, "restart_unbound", None)
    day2_resolvers = dict(lab.resolvers)
    for name in NATIONALS:
        if restart is not None:
            day2_resolvers[name] = restart(
                lab.resolvers[name], local_zones=zones, extra=UNBOUND_EXTRA
            )
        else:
            day2_resolvers[name] = lab.lab.start_unbound(
                f"{name}-day2", local_zones=zones, extra=UNBOUND_EXTRA
            )
    lab.resolvers = day2_resolvers
    config2 = ctx.work / "config-day2.yaml"
    write_config(config2, day2_resolvers, 0, ctx.names.name)
    before = loose_kib(ctx.repo)
    child, fields = monitor_run(ctx, config2, ctx.repo, DAY_2)
    events = fields.get("events", {})
    say(f"git day 2: {child.wall:.2f} s, events {events}")
    if events.get("disappeared", 0) != changes:
        raise BenchError(f"day 2 should raise {changes} disappeared events: {events}")
    bundle = ctx.work / "day2.bundle"
    git(ctx.repo, "bundle", "create", "-q", str(bundle), "HEAD^..HEAD")
    res.add("git_changes", changes, "disappeared")
    res.add("git_day2_wall", child.wall, "s", "nationals restarted with cold caches")
    res.add("git_bundle", bundle.stat().st_size / 1024, "KB", "git bundle HEAD^..HEAD")
    res.add("git_loose", loose_kib(ctx.repo) - before, "KB", "loose objects before any gc")


def loose_kib(repo: Path) -> float:
    counts = dict(
        line.split(": ", 1)
        for line in git(repo, "count-objects", "-v").splitlines()
        if ": " in line
    )
    return float(counts.get("size", 0)) + float(counts.get("size-pack", 0))


def figure_dnsperf(ctx: Context, res: Results, repeat: int) -> None:
    """dnsperf against one control (warm cache): the most one unbound thread gives here."""
    ep = ctx.lab.resolvers[CONTROLS[0]]
    seconds = ctx.args.sample_seconds
    for n in range(repeat):
        argv = [*dnsperf_args(ep, ctx.queries), "-l", f"{seconds:g}", "-q", "500"]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
        with ctx.log.open("a") as out:
            out.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}")
        qps = dnsperf_rate(done.stdout)
        lost = re.search(r"Queries lost:\s+\d+ \(([\d.]+)%\)", done.stdout)
        if done.returncode != 0 or qps is None:
            raise BenchError(f"dnsperf failed (see {ctx.log}): {done.stderr.strip()[:200]}")
        say(f"dnsperf run {n + 1}/{repeat}: {qps:.0f} queries/s")
        res.add("dnsperf_qps", qps, "queries/s", f"one unbound, {seconds:g} s")
        res.add("dnsperf_lost", float(lost.group(1)) if lost else 0.0, "%")
    for n in range(repeat):
        total = dnsperf_at_all(ctx, seconds)
        say(f"dnsperf at all five, run {n + 1}/{repeat}: {total:.0f} queries/s")
        res.add("dnsperf_all_qps", total, "queries/s", f"all 5 unbounds at once, {seconds:g} s")


def dnsperf_at_all(ctx: Context, seconds: float) -> float:
    """One dnsperf per resolver, all at once, as the engine asks them: the sum of their rates."""
    argvs = [
        [*dnsperf_args(ep, ctx.queries), "-l", f"{seconds:g}", "-q", "500"]
        for ep in ctx.lab.resolvers.values()
    ]
    processes = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for argv in argvs
    ]
    try:
        outputs = [p.communicate(timeout=seconds + 60)[0] for p in processes]
    except subprocess.TimeoutExpired:
        raise BenchError(f"dnsperf overran {seconds + 60:g} s (see {ctx.log})") from None
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    with ctx.log.open("a") as log:
        log.writelines(f"$ {' '.join(a)}\n{out}" for a, out in zip(argvs, outputs, strict=True))
    rates = [dnsperf_rate(out) for out in outputs]
    if any(p.returncode != 0 for p in processes) or None in rates:
        raise BenchError(f"dnsperf failed (see {ctx.log})")
    return sum(r for r in rates if r is not None)


def dnsperf_rate(output: str) -> float | None:
    """Return the queries a second dnsperf reported, or None when it reported none."""
    found = re.search(r"Queries per second:\s+([\d.]+)", output)
    return float(found.group(1)) if found else None


def figure_naive(ctx: Context, res: Results, repeat: int) -> None:
    """naive: dnspython's stub resolver, one query after another, for a bounded sample."""
    import dns.exception
    import dns.resolver

    ep = ctx.lab.resolvers[CONTROLS[0]]
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [ep.address]
    resolver.port = ep.port
    resolver.timeout = 2.0
    resolver.lifetime = 2.0
    seconds = ctx.args.sample_seconds
    limit = 10_000_000
    for n in range(repeat):
        count = errors = 0
        start = time.monotonic()
        deadline = start + seconds
        while count < limit and time.monotonic() < deadline:
            name = name_of(count % ctx.size)
            try:
                resolver.resolve(name, "A")
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                pass
            except dns.exception.DNSException:
                errors += 1
            count += 1
        elapsed = time.monotonic() - start
        say(f"naive run {n + 1}/{repeat}: {count} queries in {elapsed:.2f} s, {errors} errors")
        res.add("naive_qps", count / elapsed, "queries/s", f"dnspython Resolver, {seconds:g} s")


# --- rate ------------------------------------------------------------------------------------


def max_window(times: Sequence[float], width: float = 1.0) -> int:
    """Return the most arrivals within any interval of ``width`` seconds (half-open)."""
    best = left = 0
    for right, t in enumerate(times):
        while t - times[left] >= width:
            left += 1
        best = max(best, right - left + 1)
    return best


def rate_records(count: int) -> dict[tuple[str, str], list[str]]:
    """Return the World table of the rate figure: the canary and ``count`` names with an A."""
    records: dict[tuple[str, str], list[str]] = {(CANARY, "A"): ["93.184.216.34"]}
    for i in range(count):
        records[(f"r{i}.rate.bench", "A")] = [f"44.1.{(i >> 8) & 255}.{i & 255}"]
    return records


def fast_reply(query: bytes, canary_wire: bytes) -> bytes | None:
    """Return a reply to ``query`` built by hand: an A record for the canary, NODATA otherwise.

    The rate figure measures the client, so the responder must never be what limits it; a
    dnspython responder in Python manages about 1,500 queries a second here, this one far more.
    """
    if len(query) < 17 or query[2] & 0x80:
        return None
    end = query.find(b"\0", 12) + 5  # the question: name, type, class
    if end < 17:
        return None
    name, qtype = query[12 : end - 4].lower(), query[end - 4 : end - 2]
    flags = bytes((0x80 | (query[2] & 0x01), 0x80))  # QR, RD copied, RA
    if name == canary_wire and qtype == b"\0\1":
        answer = b"\xc0\x0c\0\1\0\1\0\0\x0e\x10\0\x04" + bytes((93, 184, 216, 34))
        return query[:2] + flags + b"\0\1\0\1\0\0\0\0" + query[12:end] + answer
    return query[:2] + flags + b"\0\1\0\0\0\0\0\0" + query[12:end]


def serve_arrivals(conn: Connection, count: int) -> None:
    """In a child process: answer on 127.0.0.1 over UDP, send the port, then the arrival times.

    Each arrival is the kernel's receive timestamp (SO_TIMESTAMPNS), not the moment Python got
    round to the datagram: a responder that falls behind would otherwise bunch its backlog into
    one "second" and report sends the client never made.
    """
    import select
    import socket
    import struct as st

    canary_wire = b"".join(bytes((len(p),)) + p.encode() for p in CANARY.split(".")) + b"\0"
    times: list[float] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    timestamps = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python does not name it
    sock.setsockopt(socket.SOL_SOCKET, timestamps, 1)
    sock.bind(("127.0.0.1", 0))
    conn.send(sock.getsockname()[1])
    size = st.calcsize("ll")
    try:
        while not conn.poll(0):
            if not select.select([sock], [], [], 0.05)[0]:
                continue
            wire, ancillary, _, peer = sock.recvmsg(4096, 256)
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == timestamps:
                    seconds, nanoseconds = st.unpack("ll", data[:size])
                    times.append(seconds + nanoseconds / 1e9)
            reply = fast_reply(wire, canary_wire)
            if reply is not None:
                sock.sendto(reply, peer)
        conn.recv()
    finally:
        sock.close()
    conn.send(times)


@contextlib.contextmanager
def arrival_servers(names: Sequence[str], count: int) -> Iterator[dict[str, Any]]:
    """Yield name -> (port, connection) of one responder process per name; stop them after."""
    spawn = multiprocessing.get_context("spawn")
    servers: dict[str, Any] = {}
    try:
        for name in names:
            mine, theirs = spawn.Pipe()
            process = spawn.Process(target=serve_arrivals, args=(theirs, count), daemon=True)
            process.start()
            if not mine.poll(60):
                raise BenchError(f"the {name} responder process did not start")
            servers[name] = (mine.recv(), mine, process)
        yield servers
    finally:
        for _, conn, _ in servers.values():
            # The figure asked already when the run went well; then the pipe may be closed.
            with contextlib.suppress(OSError):
                conn.send("stop")
        for _, _, process in servers.values():
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join(5)


def figure_rate(args: argparse.Namespace, work: Path, res: Results, env: dict[str, str]) -> None:
    """rate: one national and one control, each a lab responder at ``rate: R``."""
    rate = float(args.rate)
    count = max(10, int(rate * args.rate_seconds / len(RECORD_TYPES)))
    folder = work / "rate"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "names.txt").write_text("".join(f"r{i}.rate.bench\n" for i in range(count)))
    log = folder / "output.log"
    for n in range(args.repeat):
        arrivals: dict[str, list[float]] = {}
        with arrival_servers(("nat-rate", "ctl-rate"), count) as servers:
            endpoints = {
                name: Endpoint(name, "127.0.0.1", port, process.pid, log)
                for name, (port, _, process) in servers.items()
            }
            config = folder / "config.yaml"
            write_config(config, endpoints, rate, "names.txt")
            repo = new_repo(folder / f"repo-{n + 1}")
            argv = [sys.executable, "-m", "monitor", "--config", str(config), "run"]
            argv += ["--repo", str(repo), "--date", DAY_1]
            bound = 120 + 3 * count * len(RECORD_TYPES) / rate
            child = run_child(argv, cwd=folder, env=env, timeout=bound, log=log)
            if child.code != 0:
                raise BenchError(f"monitor run for the rate figure exited {child.code} ({log})")
            for name, (_, conn, _) in servers.items():
                conn.send("stop")
                if not conn.poll(30):
                    raise BenchError(f"the {name} responder did not report its arrivals")
                arrivals[name] = conn.recv()
        windows, means = [], []
        for name, times in arrivals.items():
            if len(times) < 2:
                raise BenchError(f"the {name} responder saw {len(times)} queries")
            windows.append(max_window(times))
            means.append((len(times) - 1) / (times[-1] - times[0]))
            say(
                f"rate run {n + 1}/{args.repeat} {name}: {len(times)} queries, "
                f"max window {windows[-1]}, mean {means[-1]:.1f}/s at R={rate:g}, "
                f"monitor run {child.wall:.2f} s"
            )
        res.add("rate_max_window", max(windows), "queries in 1 s", f"R={rate:g}")
        res.add("rate_mean", min(means), "queries/s", "over the busy period")
        res.add("rate_max_window_ratio", max(windows) / rate, "x R")
        res.add("rate_mean_ratio", min(means) / rate, "x R")


# --- one size --------------------------------------------------------------------------------


def add_ratios(res: Results) -> None:
    engine, naive, perf = (res.value(k) for k in ("engine_qps", "naive_qps", "dnsperf_qps"))
    if engine is not None and naive:
        res.add("ratio_engine_naive", engine / naive, "x")
    if engine is not None and perf:
        res.add("ratio_engine_dnsperf", engine / perf, "x")
    everywhere = res.value("dnsperf_all_qps")
    if engine is not None and everywhere:
        res.add("ratio_engine_dnsperf_all", engine / everywhere, "x", "no target")
    baseline = res.value("baseline_engine_qps")
    if engine is not None and baseline:
        res.add("ratio_engine_baseline", engine / baseline, "x", "this checkout / --baseline")
    e2e = res.value("e2e_wall")
    if e2e is not None:
        note = "measured" if res.size == 1_000_000 else f"projected linearly from {res.size:,}"
        res.add("e2e_minutes_1m", e2e * 1_000_000 / res.size, "min", note)


def bench_size(
    args: argparse.Namespace, size: int, work: Path, env: dict[str, str], res: Results
) -> None:
    only = set(args.only)
    if not only & {"engine", "e2e", "git", "dnsperf", "naive"}:
        return  # the rate figure needs no lab
    work.mkdir(parents=True)
    log = work / "output.log"
    start = time.monotonic()
    zone = work / "root.zone"
    write_zone(zone, size)
    names = work / "names.txt"
    write_lines(names, size, lambda i: f"{name_of(i)}\n")
    queries = work / "queries.txt"
    write_lines(queries, size, lambda i: "".join(f"{name_of(i)} {t}\n" for t in RECORD_TYPES))
    res.add("zone_write", time.monotonic() - start, "s", "zone, names and query files")
    with DNSLab(work / "lab") as dnslab:
        start = time.monotonic()
        lab = start_lab(dnslab, zone, size)
        res.add("lab_start", time.monotonic() - start, "s")
        say(
            f"lab up: nsd {lab.nsd.address}@{lab.nsd.port}, "
            + ", ".join(f"{k} {v.address}@{v.port}" for k, v in lab.resolvers.items())
        )
        ctx = Context(args, size, work, lab, names, queries, env, log)
        if not args.cold:
            res.add("warm_up", warm_up(lab, queries, size, log), "s", "dnsperf -n 1 at all 5")
        if only & {"engine", "e2e"}:
            figure_engine(ctx, res, args.repeat)
        if args.profile:
            figure_profile(ctx)
        if "dnsperf" in only:
            figure_dnsperf(ctx, res, args.repeat)
        if "naive" in only:
            figure_naive(ctx, res, args.repeat)
        # Last: it restarts the nationals with names deleted.
        if "git" in only:
            figure_git(ctx, res)


ORDER = (
    "zone_write",
    "lab_start",
    "warm_up",
    "engine_queries",
    "engine_wall",
    "engine_qps",
    "engine_cpu_per_query",
    "engine_peak_rss",
    "e2e_wall",
    "git_changes",
    "git_day2_wall",
    "git_bundle",
    "git_loose",
    "dnsperf_qps",
    "dnsperf_lost",
    "dnsperf_all_qps",
    "naive_qps",
    "rate_max_window",
    "rate_mean",
    "rate_max_window_ratio",
    "rate_mean_ratio",
    "ratio_engine_naive",
    "ratio_engine_dnsperf",
    "ratio_engine_dnsperf_all",
    "baseline_engine_qps",
    "baseline_cpu_per_query",
    "baseline_peak_rss",
    "ratio_engine_baseline",
    "e2e_minutes_1m",
)


def print_targets(res: Results) -> None:
    for target in TARGETS:
        value = res.value(target.figure)
        if value is None:
            continue
        verdict = "PASS" if target.met(value) else "FAIL"
        print(
            f"target {target.figure}: {fmt(value)} {res.units[target.figure]} {verdict}"
            f"  ({target.text})",
            flush=True,
        )


def print_table(all_results: list[Results]) -> None:
    sizes = [f"{r.size:,}" for r in all_results]
    units = {k: v for r in all_results for k, v in r.units.items()}
    rows = [name for name in ORDER if any(r.value(name) is not None for r in all_results)]
    width = max([len(n) + len(units[n]) + 3 for n in rows] + [6])
    cols = [max(12, len(s) + 2) for s in sizes]
    print(
        "\n" + "figure".ljust(width) + "".join(s.rjust(c) for s, c in zip(sizes, cols, strict=True))
    )
    targets = {t.figure: t for t in TARGETS}
    for name in rows:
        cells = []
        for r, c in zip(all_results, cols, strict=True):
            value = r.value(name)
            text = fmt(value)
            if value is not None and name in targets:
                text += " " + ("PASS" if targets[name].met(value) else "FAIL")
            cells.append(text.rjust(c))
        print(f"{name} ({units[name]})".ljust(width) + "".join(cells))
    for target in TARGETS:
        if target.figure in rows:
            print(f"  target: {target.text}")
    sys.stdout.flush()


def versions() -> str:
    parts = [f"python {platform.python_version()}", f"{os.cpu_count()} CPUs"]
    for program, flag in (("unbound", "-V"), ("nsd", "-v"), ("dnsperf", "-h")):
        path = find_binary(program)
        if path is None:
            continue
        out = subprocess.run([path, flag], capture_output=True, text=True, check=False, timeout=10)
        match = re.search(r"[Vv]ersion:?\s+(\S+)", out.stdout + out.stderr)
        parts.append(f"{program} {match.group(1) if match else '?'}")
    with contextlib.suppress(BenchError, OSError, subprocess.SubprocessError):
        parts.append("monitor " + git(ROOT, "describe", "--always", "--dirty").strip())
    return ", ".join(parts)


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark registry-monitor against NSD and unbound on loopback (issue 6)."
    )

    def sizes(text: str) -> list[int]:
        try:
            values = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from exc
        if not values or any(v < 10 or v > 5_000_000 for v in values):
            raise argparse.ArgumentTypeError("each size must be between 10 and 5,000,000")
        return values

    def only(text: str) -> list[str]:
        values = [x.strip() for x in text.split(",") if x.strip()]
        unknown = sorted(set(values) - set(FIGURES))
        if unknown or not values:
            raise argparse.ArgumentTypeError(f"choose from {','.join(FIGURES)}; got {text!r}")
        return values

    parser.add_argument("--sizes", type=sizes, default=[10000], help="names per run (10000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure, median (1)")
    parser.add_argument("--only", type=only, default=list(FIGURES), help=",".join(FIGURES))
    parser.add_argument("--changes", type=int, default=100, help="names deleted on day 2 (100)")
    parser.add_argument(
        "--sample-seconds", type=float, default=10.0, help="dnsperf and naive sample (10)"
    )
    parser.add_argument("--rate", type=float, default=2000.0, help="R of the rate figure (2000)")
    parser.add_argument(
        "--rate-seconds", type=float, default=10.0, help="length of the rate run at R (10)"
    )
    parser.add_argument(
        "--run-timeout", type=float, default=0.0, help="bound of one monitor run (300 + N*4 ms)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="one more run under py-spy: where the time goes"
    )
    parser.add_argument("--cold", action="store_true", help="skip the warm-up: caches start cold")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout (e.g. a git worktree of an older commit): each engine run is "
        "paired with one of it, and their ratio is printed",
    )
    parser.add_argument("--work", type=Path, default=None, help="work directory (a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat must be between 1 and 20")
    if not 1 <= args.changes <= 100_000:
        parser.error("--changes must be between 1 and 100000")
    if not 0 < args.sample_seconds <= 600 or not 0 < args.rate_seconds <= 600:
        parser.error("--sample-seconds and --rate-seconds must be in (0, 600]")
    if not 1 <= args.rate <= 100_000:
        parser.error("--rate must be between 1 and 100000")
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
        if not (args.baseline / "monitor" / "__main__.py").is_file():
            parser.error(f"--baseline {args.baseline}: no monitor/ package there")
    return args


@contextlib.contextmanager
def work_dir(args: argparse.Namespace) -> Iterator[Path]:
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        yield Path(tempfile.mkdtemp(prefix="bench-", dir=args.work))
        return
    path = Path(tempfile.mkdtemp(prefix="registry-monitor-bench-"))
    try:
        yield path
    finally:
        if args.keep:
            say(f"work directory kept: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; return 0 when every figure was measured, 1 when the bench broke."""
    args = parse_args(argv)
    # SIGTERM unwinds like an error, so the labs and children are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    say(f"registry-monitor bench, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    say(versions())
    broken = False
    all_results: list[Results] = []
    with work_dir(args) as work:
        home = work / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("")
        env = {
            **os.environ,
            **GIT_ENV,
            "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        rate_results: Results | None = None
        if "rate" in args.only:
            rate_results = Results(0)
            say(f"== rate: R={args.rate:g}, {args.rate_seconds:g} s per resolver ==")
            try:
                figure_rate(args, work, rate_results, env)
            except Exception as exc:  # the bench reports and goes on with the other figures
                broken = True
                print(f"BROKEN rate: {type(exc).__name__}: {exc}", flush=True)
        for size in args.sizes:
            res = Results(size)
            say(f"== N={size:,} ==")
            started = time.monotonic()
            try:
                bench_size(args, size, work / f"n{size}", env, res)
            except Exception as exc:
                broken = True
                print(f"BROKEN N={size}: {type(exc).__name__}: {exc}", flush=True)
            if rate_results is not None:
                for name, values in rate_results.samples.items():
                    res.samples[name] = list(values)
                    res.units[name] = rate_results.units[name]
                    if name in rate_results.notes:
                        res.notes[name] = rate_results.notes[name]
            add_ratios(res)
            say(f"N={size:,} took {time.monotonic() - started:.1f} s")
            for name in ORDER:
                print_figure(res, name)
            print_targets(res)
            all_results.append(res)
    print_table(all_results)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
