"""Measurements against in-process resolvers: strategies, canaries, confirmation, pacing."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.message
import pytest

from monitor.config import Config, load_config_text
from monitor.lab import Handler, Lab, Reply, Request, World
from monitor.measure import YOUNG_THRESHOLD, Measurement, Progress, measure
from monitor.probe import Pacer
from monitor.run import run
from monitor.vocabulary import Verdict

NAMES = [f"name{i}.example" for i in range(300)]
DELETED = NAMES[:5]
NATIONAL_ONLY = "natonly.example"
RECORDS = {(n, "A"): ["93.184.216.34"] for n in [*NAMES, "example.com"]}


# What the lab fixture gives: the running lab, and the world each of its resolvers answers from.
RunningLab = tuple[Lab, dict[str, World]]


@pytest.fixture
def lab() -> Iterator[RunningLab]:
    base = World(RECORDS)
    worlds = {
        "nat-a": base.variant(nxdomain=DELETED, redirect={NATIONAL_ONLY: "95.1.2.3"}),
        "nat-b": base.variant(nxdomain=DELETED, redirect={NATIONAL_ONLY: "95.1.2.3"}),
        "ctl-a": base.variant(),
        "ctl-b": base.variant(),
    }
    with Lab(worlds) as running:
        yield running, worlds


def config_for(
    lab: Lab, tmp_path: Path, extra: str = "", names: list[str] | None = None, timeout: float = 2.0
) -> Config:
    watch = "\n".join(f"  - {n}" for n in (names or [*NAMES, NATIONAL_ONLY]))

    def entry(name: str) -> str:
        return f"    - {{name: {name}, address: 127.0.0.1, port: {lab[name].port}, rate: 0}}"

    text = f"""vantage: test
record_types: [A]
timeout: {timeout}
attempts: 2
confirm: 1
{extra}
resolvers:
  national:
{entry("nat-a")}
{entry("nat-b")}
  control:
{entry("ctl-a")}
{entry("ctl-b")}
watchlist:
{watch}
"""
    return load_config_text(text, tmp_path / "config.yaml")


def verdicts(m: Measurement) -> dict[str, str]:
    return {r.domain: r.verdict.value for r in m.domains}


def test_full_strategy_asks_everyone_everything(lab: RunningLab, tmp_path: Path) -> None:
    running, _ = lab
    m = measure(config_for(running, tmp_path), confirm_spacing=0)
    v = verdicts(m)
    assert [v[d] for d in DELETED] == ["missing"] * 5
    assert v[NATIONAL_ONLY] == "national-only"
    assert v[NAMES[-1]] == "present"
    # canaries before and after (a canary, and A and AAAA of a name that cannot exist), the
    # first canary once more over TCP (does TCP work?), 301 names, and the confirmation of the
    # 6 names that were not present
    assert m.queries_by_resolver["ctl-a"] == 3 + 1 + 301 + 3 + 6


def test_economical_strategy_spares_the_controls(lab: RunningLab, tmp_path: Path) -> None:
    running, _ = lab
    config = config_for(running, tmp_path, "strategy: economical")
    m = measure(config, confirm_spacing=0, previous={NATIONAL_ONLY: "national-only"})
    v = verdicts(m)
    assert [v[d] for d in DELETED] == ["missing"] * 5
    assert v[NATIONAL_ONLY] == "national-only"  # asked again: it was not present last time
    assert set(v.values()) == {"missing", "national-only", "present"}
    assert m.queries_by_resolver["nat-a"] == 3 + 1 + 301 + 3 + 6
    # the controls: canaries (one over TCP too), the 6 names that are not clean or not
    # present, a sample of 100
    # and 3 names of the address every name shares, which might have been a block page (a
    # control gives it too: it is not)
    assert m.queries_by_resolver["ctl-a"] == 3 + 1 + 6 + 3 + 100 + 3 + 6
    present = next(r for r in m.domains if r.verdict is Verdict.PRESENT)
    assert [present.status(n) for n in ("nat-a", "nat-b", "ctl-a", "ctl-b")] == ["ok", "ok", "", ""]
    missing = next(r for r in m.domains if r.domain == DELETED[0])
    assert missing.status("ctl-a") == "ok"


def test_an_economical_run_asks_the_controls_about_what_was_not_present(
    lab: RunningLab, tmp_path: Path
) -> None:
    # `run` hands the last snapshot's verdicts to the measurement: the national-only name
    # resolves cleanly at the nationals, but it was not present yesterday, so the controls are
    # asked about it again, whether or not the sample would have picked it.
    running, _ = lab
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    day1 = run(config_for(running, tmp_path), repo=repo, date="2026-03-01")
    config = config_for(running, tmp_path, "strategy: economical")
    day2 = run(config, repo=repo, date="2026-03-02", confirm_spacing=0)
    assert verdicts(day1.measurement)[NATIONAL_ONLY] == "national-only"
    assert verdicts(day2.measurement)[NATIONAL_ONLY] == "national-only"
    assert day2.events == ()
    # canaries, the 5 deleted names and the national-only one, a sample of 100 of the rest,
    # the canaries after, the confirmation of the 6
    # canaries (one over TCP), the 6 names not clean or not present, 3 names of the address
    # every name shares (a candidate block page, cleared), the sample, canaries, confirmation
    assert day2.measurement.queries_by_resolver["ctl-a"] == 3 + 1 + 6 + 3 + 100 + 3 + 6


def test_a_resolver_failing_its_canaries_is_down_and_left_out(
    lab: RunningLab, tmp_path: Path
) -> None:
    running, worlds = lab
    worlds["nat-b"].update(refuse=["."])
    m = measure(config_for(running, tmp_path, names=NAMES[:10]), confirm_spacing=0)
    health = {r.name: r.health for r in m.resolvers}
    assert health == {"nat-a": "up", "nat-b": "down", "ctl-a": "up", "ctl-b": "up"}
    assert verdicts(m)[DELETED[0]] == "missing"
    assert m.domains[0].status("nat-b") == "down"
    assert m.domains[0].observations.keys() == {"nat-a", "ctl-a", "ctl-b"}


def test_a_resolver_that_lost_one_round_of_canaries_stays_up(tmp_path: Path) -> None:
    # A lossy path eats every attempt of the first round: that alone must not take it out.
    base = World(RECORDS)
    lost: list[Request] = []

    def lossy(request: Request) -> Reply:
        # attempts: 2; over UDP (the canary asked over TCP to learn whether TCP works is not
        # the round this test loses)
        if request.transport == "udp" and b"\x07example\x03com" in request.wire and len(lost) < 2:
            lost.append(request)
            return None
        return base(request)

    handlers: dict[str, Handler] = {"nat-a": base, "nat-b": lossy, "ctl-a": base, "ctl-b": base}
    with Lab(handlers) as running:
        m = measure(config_for(running, tmp_path, names=NAMES[:10], timeout=0.3), confirm_spacing=0)
    assert len(lost) == 2
    assert {r.name: r.health for r in m.resolvers} == dict.fromkeys(handlers, "up")
    assert set(verdicts(m).values()) == {"present"}
    # the lost round (2 attempts), the round that answered, the impossible name's A and AAAA,
    # the canary over TCP
    assert m.queries_by_resolver["nat-b"] == 2 + 1 + 2 + 1 + 10 + 3
    assert m.queries_by_resolver["nat-a"] == 3 + 1 + 10 + 3


def test_a_resolver_whose_upstream_failed_for_a_moment_stays_up(tmp_path: Path) -> None:
    # SERVFAIL comes back at once: the second round of canaries waits out a timeout from the
    # first, so a failure shorter than that does not take the resolver out for the day.
    base = World(RECORDS)
    failing = World(RECORDS, servfail=["example.com"])
    asked: list[float] = []

    def flapping(request: Request) -> Reply:
        if request.transport == "udp" and b"\x07example\x03com" in request.wire:
            asked.append(time.monotonic())
            if len(asked) == 1:
                return failing(request)
        return base(request)

    handlers: dict[str, Handler] = {"nat-a": base, "nat-b": flapping, "ctl-a": base, "ctl-b": base}
    with Lab(handlers) as running:
        m = measure(config_for(running, tmp_path, names=NAMES[:10], timeout=1.0), confirm_spacing=0)
    assert {r.name: r.health for r in m.resolvers} == dict.fromkeys(handlers, "up")
    assert set(verdicts(m).values()) == {"present"}
    # the SERVFAIL, the second round, the canary after the main pass
    assert len(asked) == 3
    # The second round waited out the 1 s timeout, not a moment (half of it is the margin for
    # a loaded machine noting the first query late).
    assert asked[1] - asked[0] >= 0.5


def test_names_with_the_same_codes_and_other_addresses_are_judged_apart(tmp_path: Path) -> None:
    # Verdicts are judged once per set of codes, but a labelled answer's verdict also depends
    # on its addresses: two names the nationals label alike get each their own.
    names = ["labelled.example", "forged.example", "labelled2.example"]
    base = World({**RECORDS, **{(n, "A"): ["93.184.216.34"] for n in names}})
    forging = base.variant(redirect={"forged.example": "95.1.2.3"})

    def labelling(request: Request) -> Reply:
        reply = forging(request)
        query = request.message
        asked = query.question[0].name.to_text(omit_final_dot=True) if query else None
        if isinstance(reply, dns.message.Message) and asked in names:
            forged = dns.edns.EDEOption(dns.edns.EDECode.FORGED_ANSWER, "filtered")
            reply.use_edns(0, payload=1232, options=[forged])
        return reply

    handlers: dict[str, Handler] = {
        "nat-a": labelling,
        "nat-b": labelling,
        "ctl-a": base,
        "ctl-b": base,
    }
    with Lab(handlers) as running:
        m = measure(config_for(running, tmp_path, names=[*names, *NAMES[:3]]), confirm_spacing=0)
    v = verdicts(m)
    assert [v[n] for n in names] == ["present", "tampered", "present"]
    assert {v[n] for n in NAMES[:3]} == {"present"}
    errors = {r.domain: dict(r.ede) for r in m.domains}
    assert errors["labelled.example"]["nat-a"] == ((4, "filtered"),)  # labelled, as it said


def test_every_national_down_is_inconclusive(lab: RunningLab, tmp_path: Path) -> None:
    running, worlds = lab
    for name in ("nat-a", "nat-b"):
        worlds[name].update(drop=["."])
    m = measure(config_for(running, tmp_path, timeout=0.3), confirm_spacing=0)
    assert m.inconclusive == "every national resolver is down (no canary answered)"
    assert m.domains == ()
    # The canaries alone: no resolver was asked about a watchlist name.
    asked = {
        q.qname for name in ("nat-a", "nat-b", "ctl-a", "ctl-b") for q in running[name].queries
    }
    assert "example.com" in asked
    watched = {*NAMES, NATIONAL_ONLY}
    assert not watched & asked, sorted(watched & asked)[:5]


def test_a_flapping_answer_is_unstable(lab: RunningLab, tmp_path: Path) -> None:
    running, worlds = lab
    flaky = NAMES[7]
    asked = {"n": 0}
    real = worlds["nat-a"]

    def flapping(request: Request) -> Reply:
        if (
            request.message is not None
            and request.message.question[0].name.to_text() == flaky + "."
        ):
            asked["n"] += 1
            if asked["n"] == 1:
                return World(RECORDS, nxdomain=[flaky])(request)
        return real(request)

    running["nat-a"].handler = flapping
    running["nat-b"].handler = flapping
    m = measure(config_for(running, tmp_path, names=[flaky]), confirm_spacing=0)
    assert verdicts(m)[flaky] == "unstable"


def test_progress_is_reported(lab: RunningLab, tmp_path: Path) -> None:
    running, _ = lab
    seen: list[Progress] = []
    measure(config_for(running, tmp_path), confirm_spacing=0, progress=seen.append)
    assert seen and seen[-1].done == seen[-1].total == 4 * 301


def test_what_lives_through_the_pass_is_kept_out_of_the_collector(
    lab: RunningLab, tmp_path: Path
) -> None:
    # The config and its names are frozen out of the garbage collector while the pass runs
    # (each full collection walked a million names), and given back after it, also on error.
    running, _ = lab
    config = config_for(running, tmp_path)
    before = gc.get_threshold()
    during: list[tuple[int, tuple[int, int, int]]] = []
    measure(
        config,
        confirm_spacing=0,
        progress=lambda _: during.append((gc.get_freeze_count(), gc.get_threshold())),
    )
    assert during and min(n for n, _ in during) > len(config.watchlist)  # each name at least
    assert {t for _, t in during} == {(YOUNG_THRESHOLD, *before[1:])}
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before

    def broken(_: Progress) -> None:
        raise RuntimeError("a progress callback that fails")

    with pytest.raises(RuntimeError):
        measure(config, confirm_spacing=0, progress=broken)
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before


def test_economical_progress_counts_the_control_pass_too(lab: RunningLab, tmp_path: Path) -> None:
    running, _ = lab
    seen: list[Progress] = []
    config = config_for(running, tmp_path, "strategy: economical")
    measure(config, confirm_spacing=0, progress=seen.append)
    # 2 nationals x 301 names; then 2 controls x (3 names of the address every name shares, a
    # candidate block page; the 5 deleted names; a sample of 100)
    assert seen[-1].done == seen[-1].total == 2 * 301 + 2 * (3 + 5 + 100)
    assert all(p.done <= p.total for p in seen)


def worst_second(times: list[float]) -> int:
    """Return the most events in any window of one second."""
    j = worst = 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        worst = max(worst, i - j + 1)
    return worst


def test_pacer_never_lets_more_than_the_rate_through_in_any_second() -> None:
    """Send times (taken where the send happens) stay within the rate, even when the loop lags."""

    async def go() -> list[float]:
        loop = asyncio.get_running_loop()
        pacer = Pacer(100)
        sent: list[float] = []

        async def sender() -> None:
            for _ in range(5):
                await pacer.wait()
                sent.append(loop.time())

        async def lag() -> None:
            for _ in range(10):
                await asyncio.sleep(0.05)
                time.sleep(0.08)  # the loop is blocked: woken senders would bunch up

        await asyncio.gather(lag(), *(sender() for _ in range(50)))
        return sorted(sent)

    sent = asyncio.run(go())
    assert len(sent) == 250
    assert worst_second(sent) <= 100
