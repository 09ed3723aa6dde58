"""The tally of a pass: one byte per answer, and beside it only what can matter."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.blockpages import Sightings
from monitor.config import Config, load_config_text
from monitor.measure import _round_says
from monitor.probe import Observation
from monitor.probe.wire import Evidence
from monitor.tally import Tally
from monitor.verdict import LABELLED, NOT_ASKED, NOTED, STATUS_CODE, SUSPICIOUS, Panel, Suspicion
from monitor.vocabulary import Status, Verdict

DOMAINS = ["a.example", "b.example", "c.example"]
PANEL = Panel(national=("nat-a", "nat-b"), control=("ctl-a",))


@pytest.fixture
def config(tmp_path: Path) -> Config:
    text = """
record_types: [A, AAAA]
resolvers:
  national:
    - {name: nat-a, address: 127.0.0.1}
    - {name: nat-b, address: 127.0.0.1}
  control:
    - {name: ctl-a, address: 127.0.0.1, transport: tcp}
watchlist: [a.example, b.example, c.example]
"""
    return load_config_text(text, tmp_path / "config.yaml")


def tally(config: Config, **options: object) -> Tally:
    return Tally(
        config,
        DOMAINS,
        suspicion=Suspicion(),
        rewrites={},
        **options,  # type: ignore[arg-type]
    )


def said(
    resolver: str,
    domain: str,
    rdtype: str,
    status: str,
    *answers: str,
    ede: tuple[tuple[int, str], ...] = (),
    cname: tuple[str, ...] = (),
) -> Observation:
    evidence = Evidence(ede=ede, cname=cname)
    return Observation(resolver, domain, rdtype, Status(status), answers, None, evidence)


def feed(t: Tally, *observations: Observation) -> None:
    for o in observations:
        index = DOMAINS.index(o.domain) * 2 + (o.rdtype == "AAAA")
        t.sink(index, o)


def test_each_answer_is_one_byte_with_its_flags(config: Config) -> None:
    t = tally(config)
    feed(
        t,
        said("nat-a", "a.example", "A", "ok", "10.10.34.34"),
        said("nat-a", "a.example", "AAAA", "nodata", ede=((18, "x"),)),
        said("nat-b", "b.example", "A", "ok", "95.1.2.3", ede=((15, "blocked"),)),
    )
    ok, nodata = STATUS_CODE[Status.OK], STATUS_CODE[Status.NODATA]
    assert t.codes_of(0) == {"nat-a": bytes([ok | SUSPICIOUS, nodata | NOTED])}
    assert t.codes_of(1) == {"nat-b": bytes([ok | LABELLED | NOTED, NOT_ASKED])}
    assert t.codes_of(2) == {}
    assert t.errors_of(0) == {"nat-a": ((18, "x"),)}
    assert t.errors_of(1) == {"nat-b": ((15, "blocked"),)}
    assert t.errors_of(2) == {}
    # only the labelled and the suspicious answers' addresses are kept: for comparing with
    # the controls', and for the line of a tampered name
    assert t.answers == {("nat-a", 0): ("10.10.34.34",), ("nat-b", 2): ("95.1.2.3",)}
    assert t.gave(0, ["nat-a", "nat-b"]) == {"nat-a": ("10.10.34.34",)}
    assert t.labelled_positions(["nat-a", "nat-b"]) == [1]


def test_errors_are_gathered_over_the_types_without_repeats(config: Config) -> None:
    t = tally(config)
    feed(
        t,
        said("nat-a", "c.example", "A", "refused", ede=((18, "EIM4"),)),
        said("nat-a", "c.example", "AAAA", "refused", ede=((18, "EIM4"), (15, ""))),
    )
    assert t.errors_of(2) == {"nat-a": ((15, ""), (18, "EIM4"))}


def test_a_labelled_answer_apart_from_the_controls(config: Config) -> None:
    t = tally(config, keep={1})
    feed(
        t,
        said("nat-a", "b.example", "A", "ok", "95.1.2.3", ede=((4, "5DO5"),)),
        said("nat-b", "b.example", "A", "ok", "93.184.216.34", ede=((15, ""),)),
        said("ctl-a", "b.example", "A", "ok", "93.184.216.34"),
        said("ctl-a", "a.example", "A", "ok", "93.184.216.9"),  # not kept: not asked to
    )
    assert t.answers_of("ctl-a", 1) == {0: ("93.184.216.34",)}
    assert t.answers_of("ctl-a", 0) == {}
    assert t.apart(1, PANEL.national, PANEL.control) == {"nat-a"}


def test_kept_answers_everywhere(config: Config) -> None:
    t = tally(config, keep=True)
    feed(t, said("ctl-a", "a.example", "AAAA", "ok", "2001:db8::1"))
    assert t.answers_of("ctl-a", 0) == {1: ("2001:db8::1",)}


def test_sightings_note_national_values_and_what_controls_give(config: Config) -> None:
    seen = Sightings()
    t = tally(config, sightings=seen)
    for domain in DOMAINS:
        feed(t, said("nat-a", domain, "A", "ok", "95.1.2.3", cname=("garden.isp.example",)))
        # a bogon is tampering already: never a suspected page
        feed(t, said("nat-b", domain, "A", "ok", "10.0.34.34"))
    feed(t, said("ctl-a", "a.example", "A", "ok", "93.184.216.34", cname=("garden.isp.example",)))
    shared = {value: positions for value, _, positions in seen.shared()}
    assert shared == {"95.1.2.3": (0, 1, 2)}  # the garden host is given by a control too


def test_forget_leaves_a_resolver_out(config: Config) -> None:
    t = tally(config, detail=True)
    feed(
        t,
        said("nat-a", "b.example", "A", "ok", "95.1.2.3", ede=((15, ""),)),
        said("nat-b", "b.example", "A", "ok", "93.184.216.34"),
    )
    t.forget("nat-a")
    assert t.codes_of(1) == {"nat-b": bytes([STATUS_CODE[Status.OK], NOT_ASKED])}
    assert t.errors_of(1) == {}
    assert t.answers == {}
    assert list(t.observations_of(1)) == ["nat-b"]


# ----------------------------------------------------------------------------- confirmation


def main_pass(config: Config) -> Tally:
    t = tally(config, keep=True)
    for name in ("nat-a", "nat-b"):
        feed(
            t,
            said(name, "a.example", "A", "nxdomain"),
            said(name, "a.example", "AAAA", "nxdomain"),
        )
    feed(
        t,
        said("ctl-a", "a.example", "A", "ok", "93.184.216.34"),
        said("ctl-a", "a.example", "AAAA", "nodata"),
    )
    return t


@pytest.mark.parametrize(
    ("round_says", "verdict"),
    [
        # the same answers: confirmed
        ({"nat-a": "nxdomain", "nat-b": "nxdomain", "ctl-a": "ok"}, "missing"),
        # a national that gave no answer keeps its main-pass answer: still missing
        ({"nat-a": "timeout", "nat-b": "nxdomain", "ctl-a": "ok"}, "missing"),
        ({"nat-a": "error", "nat-b": "timeout", "ctl-a": "ok"}, "missing"),
        # no answer at all this round: nothing contradicts
        ({"nat-a": "timeout", "nat-b": "timeout", "ctl-a": "timeout"}, "missing"),
        # an answer contradicts
        ({"nat-a": "ok", "nat-b": "nxdomain", "ctl-a": "ok"}, "partial"),
        # a refusal is an answer (a declared block), not silence
        ({"nat-a": "refused", "nat-b": "refused", "ctl-a": "ok"}, "failing"),
    ],
)
def test_in_a_confirmation_round_only_an_answer_contradicts(
    config: Config, round_says: dict[str, str], verdict: str
) -> None:
    before = main_pass(config)
    again = Tally(config, ["a.example"], suspicion=Suspicion(), rewrites={}, keep=True)
    for name, status in round_says.items():
        answers = ("93.184.216.34",) if status == "ok" else ()
        again.sink(0, said(name, "a.example", "A", status, *answers))
        aaaa = "nodata" if status == "ok" else status
        again.sink(1, said(name, "a.example", "AAAA", aaaa))
    assert _round_says(again, 0, before, 0, PANEL, config) is Verdict(verdict)


def test_a_first_answer_in_a_confirmation_round_stands(config: Config) -> None:
    """Every attempt of the main pass lost: the name looked failing. The round's answers are
    the first these resolvers gave: they stand, and the name is missing, not unstable."""
    before = tally(config, keep=True, detail=True)
    for name in ("nat-a", "nat-b"):
        feed(
            before,
            said(name, "a.example", "A", "timeout"),
            said(name, "a.example", "AAAA", "timeout"),
        )
    feed(
        before,
        said("ctl-a", "a.example", "A", "ok", "93.184.216.34"),
        said("ctl-a", "a.example", "AAAA", "nodata"),
    )
    assert not before.answered("nat-a", 0) and before.answered("ctl-a", 0)
    again = Tally(config, ["a.example"], suspicion=Suspicion(), rewrites={}, keep=True, detail=True)
    for name in ("nat-a", "nat-b"):
        again.sink(0, said(name, "a.example", "A", "nxdomain", ede=((15, "blocked"),)))
        again.sink(1, said(name, "a.example", "AAAA", "nxdomain"))
    before.adopt(0, again, 0, "nat-a")
    assert before.codes_of(0)["nat-a"] == again.codes_of(0)["nat-a"]
    assert before.errors_of(0) == {"nat-a": ((15, "blocked"),)}
    assert [o.status for o in before.observations_of(0)["nat-a"]] == ["nxdomain", "nxdomain"]
    assert before.answered("nat-a", 0)
    # with both adopted, the round agrees with what stands
    before.adopt(0, again, 0, "nat-b")
    assert _round_says(again, 0, before, 0, PANEL, config) is Verdict.MISSING
