"""The fast reply reader agrees with dnspython, and hostile bytes only raise MalformedReply."""

from __future__ import annotations

import contextlib

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.probe.wire import MalformedReply, Question, Reading, classify, query_wire, read_reply

QNAME = "www.Example.org."


def reply_to(
    qname: str = QNAME,
    rdtype: str = "A",
    rcode: int = dns.rcode.NOERROR,
    answer: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
    authority: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
    aa: bool = False,
    tc: bool = False,
) -> bytes:
    query = dns.message.make_query(qname, rdtype)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    for owner, kind, text in answer:
        response.answer.append(dns.rrset.from_text(owner, 60, "IN", kind, text))
    for owner, kind, text in authority:
        response.authority.append(dns.rrset.from_text(owner, 60, "IN", kind, text))
    if aa:
        response.flags |= dns.flags.AA
    if tc:
        response.flags |= dns.flags.TC
    return response.to_wire()


def oracle(wire: bytes, qname: str, rdtype: int) -> tuple[str, tuple[str, ...], str | None]:
    return classify(dns.message.from_wire(wire), dns.name.from_text(qname), rdtype)


CASES = [
    ("ok", dict(answer=[(QNAME, "A", "93.184.216.34"), (QNAME, "A", "93.184.216.35")])),
    (
        "cname chain",
        dict(answer=[(QNAME, "CNAME", "b.example.net."), ("b.example.net.", "A", "1.2.3.4")]),
    ),
    ("cname to nothing", dict(answer=[(QNAME, "CNAME", "b.example.net.")])),
    ("nodata", dict(authority=[("example.org.", "SOA", "ns. h. 1 2 3 4 5")])),
    ("referral", dict(authority=[("example.org.", "NS", "ns.example.net.")])),
    (
        "aa ns is not a referral",
        dict(authority=[("example.org.", "NS", "ns.example.net.")], aa=True),
    ),
    ("nxdomain", dict(rcode=dns.rcode.NXDOMAIN)),
    ("servfail", dict(rcode=dns.rcode.SERVFAIL)),
    ("refused", dict(rcode=dns.rcode.REFUSED)),
    ("notimp", dict(rcode=dns.rcode.NOTIMP)),
    (
        "loop",
        dict(answer=[(QNAME, "CNAME", "b.example.net."), ("b.example.net.", "CNAME", QNAME)]),
    ),
    ("other owner", dict(answer=[("elsewhere.example.", "A", "1.2.3.4")])),
]


@pytest.mark.parametrize(("case", "spec"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("rdtype", ["A", "AAAA"])
def test_fast_reader_agrees_with_dnspython(case: str, spec: dict[str, object], rdtype: str) -> None:
    if rdtype == "AAAA":
        spec = {
            **spec,
            "answer": [
                (o, "AAAA" if k == "A" else k, "2001:db8::1" if k == "A" else t)
                for o, k, t in spec.get("answer", [])  # type: ignore[attr-defined]
            ],
        }
    wire = reply_to(rdtype=rdtype, **spec)  # type: ignore[arg-type]
    code = 1 if rdtype == "A" else 28
    reading = read_reply(wire, Question.of(QNAME.lower().rstrip("."), code))
    assert reading is not None
    assert (reading.status, reading.answers, reading.detail) == oracle(wire, QNAME, code)


def test_truncation_and_mismatches() -> None:
    question = Question.of("www.example.org", 1)
    assert read_reply(reply_to(tc=True), question) == Reading("truncated", truncated=True)
    assert read_reply(reply_to(qname="other.example.org"), question) is None
    assert read_reply(reply_to(rdtype="AAAA"), question) is None
    query = query_wire(question)
    assert read_reply(b"\x12\x34" + query[2:], question) is None  # a query, not a response


@pytest.mark.parametrize(
    "wire",
    [b"", b"\x00" * 11, reply_to()[:20], reply_to(answer=[(QNAME, "A", "1.2.3.4")])[:-2]],
)
def test_short_replies_are_malformed(wire: bytes) -> None:
    with pytest.raises(MalformedReply):
        read_reply(wire, Question.of("www.example.org", 1))


def test_query_wire_parses_as_the_query_dnspython_would_make() -> None:
    wire = query_wire(Question.of("www.example.org", 28), recursion=False, payload=1232)
    message = dns.message.from_wire(wire)
    assert message.question[0].name == dns.name.from_text("www.example.org")
    assert message.question[0].rdtype == 28
    assert not message.flags & dns.flags.RD
    assert message.edns == 0 and message.payload == 1232


VALID = reply_to(answer=[(QNAME, "CNAME", "b.example.net."), ("b.example.net.", "A", "1.2.3.4")])


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_malformed(data: bytes) -> None:
    with contextlib.suppress(MalformedReply):
        read_reply(data, Question.of("www.example.org", 1))


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=6))
def test_mutated_replies_only_raise_malformed_and_agree_when_both_parse(
    mutations: list[tuple[int, int]],
) -> None:
    data = bytearray(VALID)
    for position, value in mutations:
        data[position] = value
    question = Question.of("www.example.org", 1)
    try:
        reading = read_reply(bytes(data), question)
    except MalformedReply:
        return
    if reading is None or reading.truncated:
        return
    try:
        message = dns.message.from_wire(bytes(data))
    except Exception:
        return  # we read less of the message than dnspython checks (the additional section)
    if message.rcode() in (
        dns.rcode.NOERROR,
        dns.rcode.NXDOMAIN,
        dns.rcode.SERVFAIL,
        dns.rcode.REFUSED,
    ):
        expected = classify(message, dns.name.from_text(QNAME), 1)
        assert (reading.status, reading.answers) == expected[:2]
