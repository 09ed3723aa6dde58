"""The fast reply reader agrees with dnspython, and hostile bytes only raise MalformedReply."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Sequence
from typing import TypedDict

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.probe import wire as wire_module
from monitor.probe.wire import (
    MAX_EDE,
    MAX_EDE_TEXT,
    NO_EVIDENCE,
    UNREAD,
    Evidence,
    MalformedReply,
    Question,
    Reading,
    classify,
    query_head,
    query_tail,
    query_wire,
    rdtype_code,
    read_fast,
    read_reply,
    read_with_dnspython,
)
from monitor.vocabulary import Status

QNAME = "www.Example.org."
A, NS, CNAME, SOA, MX, AAAA = 1, 2, 5, 6, 15, 28
ASKED = Question.of("www.example.org", A)


def reply_to(
    qname: str = QNAME,
    rdtype: str = "A",
    rcode: dns.rcode.Rcode = dns.rcode.NOERROR,
    answer: Sequence[tuple[str, str, str]] = (),
    authority: Sequence[tuple[str, str, str]] = (),
    additional: Sequence[tuple[str, str, str]] = (),
    ede: Sequence[tuple[int, str | None]] | None = None,
    aa: bool = False,
    tc: bool = False,
) -> bytes:
    """Return a reply as dnspython writes it (names compressed), each record one RRset; with
    ``ede`` (even empty), an OPT record carrying those Extended DNS Errors."""
    query = dns.message.make_query(qname, rdtype, use_edns=0 if ede is not None else None)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    if ede is not None:
        options: list[dns.edns.Option] = [
            dns.edns.EDEOption(dns.edns.EDECode.make(code), text) for code, text in ede
        ]
        response.use_edns(0, payload=1232, options=options)
    for owner, kind, text in answer:
        response.answer.append(dns.rrset.from_text(owner, 60, "IN", kind, text))
    for owner, kind, text in authority:
        response.authority.append(dns.rrset.from_text(owner, 60, "IN", kind, text))
    for owner, kind, text in additional:
        response.additional.append(dns.rrset.from_text(owner, 60, "IN", kind, text))
    if aa:
        response.flags |= dns.flags.AA
    if tc:
        response.flags |= dns.flags.TC
    return response.to_wire()


def oracle(wire: bytes, qname: str, rdtype: int) -> tuple[Status, tuple[str, ...], str | None]:
    """Return what dnspython's own parse of ``wire`` gives, through classify."""
    return classify(dns.message.from_wire(wire), dns.name.from_text(qname), rdtype)


# Replies written byte by byte, for what dnspython will not write: names not compressed, or
# compressed where it would not, and broken ones.


def name(text: str) -> bytes:
    """Return a name in uncompressed wire form."""
    return b"".join(bytes((len(label),)) + label.encode() for label in text.split(".")) + b"\0"


def rr(owner: bytes, rtype: int, rdata: bytes, rclass: int = 1) -> bytes:
    return owner + struct.pack("!HHIH", rtype, rclass, 60, len(rdata)) + rdata


def packet(
    answer: Sequence[bytes] = (),
    authority: Sequence[bytes] = (),
    *,
    flags: int = 0x8180,  # QR RD RA, NOERROR
    qname: bytes = name("www.example.org"),
    qtype: int = A,
    qclass: int = 1,
    counts: tuple[int, int] | None = None,
) -> bytes:
    an, ns = counts if counts is not None else (len(answer), len(authority))
    return (
        struct.pack("!HHHHHH", 0x1234, flags, 1, an, ns, 0)
        + qname
        + struct.pack("!HH", qtype, qclass)
        + b"".join(answer)
        + b"".join(authority)
    )


TO_QUESTION = b"\xc0\x0c"
# www.example.org, its last label followed by a pointer to the header's zero byte at offset 4
# (qdcount's high byte) instead of the root label: compressed, and valid for dnspython.
COMPRESSED = name("www.example.org")[:-1] + b"\xc0\x04"


def v6(address: str) -> str:
    return "2001:db8::" + address.replace(".", ":")


class Reply(TypedDict, total=False):
    """What :func:`reply_to` is given besides the type asked."""

    rcode: dns.rcode.Rcode
    answer: Sequence[tuple[str, str, str]]
    authority: Sequence[tuple[str, str, str]]
    aa: bool


# (case, reply, what it says about an A question)
FAST_CASES: list[tuple[str, Reply, tuple[Status, tuple[str, ...], str | None]]] = [
    (
        "addresses",
        Reply(answer=[(QNAME, "A", "93.184.216.34"), (QNAME, "A", "93.184.216.35")]),
        (Status.OK, ("93.184.216.34", "93.184.216.35"), None),
    ),
    (
        "cname chain",
        Reply(answer=[(QNAME, "CNAME", "b.example.net."), ("b.example.net.", "A", "1.2.3.4")]),
        (Status.OK, ("1.2.3.4",), None),
    ),
    (
        # The second address's owner comes right after a byte 12, the question's offset.
        "cname chain to two addresses",
        Reply(
            answer=[
                (QNAME, "CNAME", "b.example.net."),
                ("b.example.net.", "A", "192.0.2.12"),
                ("b.example.net.", "A", "192.0.2.13"),
            ]
        ),
        (Status.OK, ("192.0.2.12", "192.0.2.13"), None),
    ),
    (
        "long cname chain",
        Reply(
            answer=[(QNAME, "CNAME", "c1.example.net.")]
            + [(f"c{i}.example.net.", "CNAME", f"c{i + 1}.example.net.") for i in range(1, 15)]
            + [("c15.example.net.", "A", "1.2.3.4")]
        ),
        (Status.OK, ("1.2.3.4",), None),
    ),
    (
        "cname to nothing",
        Reply(answer=[(QNAME, "CNAME", "b.example.net.")]),
        (Status.NODATA, (), None),
    ),
    (
        "cname loop through the qname",
        Reply(answer=[(QNAME, "CNAME", "b.example.net."), ("b.example.net.", "CNAME", QNAME)]),
        (Status.ERROR, (), "CNAME loop"),
    ),
    (
        "cname loop past the qname",
        Reply(
            answer=[
                (QNAME, "CNAME", "b.example.net."),
                ("b.example.net.", "CNAME", "c.example.net."),
                ("c.example.net.", "CNAME", "b.example.net."),
            ]
        ),
        (Status.ERROR, (), "CNAME loop"),
    ),
    (
        "answer for another name",
        Reply(answer=[("elsewhere.example.", "A", "1.2.3.4")]),
        (Status.NODATA, (), None),
    ),
    ("empty", Reply(), (Status.NODATA, (), None)),
    (
        "nodata",
        Reply(authority=[("example.org.", "SOA", "ns. h. 1 2 3 4 5")]),
        (Status.NODATA, (), None),
    ),
    (
        "referral",
        Reply(authority=[("example.org.", "NS", "ns.example.net.")]),
        (Status.REFERRAL, (), None),
    ),
    (
        "referral with several ns",
        Reply(
            authority=[
                ("example.org.", "NS", "ns1.example.net."),
                ("example.org.", "NS", "ns2.example.net."),
                ("org.", "NS", "a.gtld.example."),
            ]
        ),
        (Status.REFERRAL, (), None),
    ),
    (
        "ns then soa is nodata",
        Reply(
            authority=[
                ("example.org.", "NS", "ns.example.net."),
                ("example.org.", "SOA", "ns. h. 1 2 3 4 5"),
            ]
        ),
        (Status.NODATA, (), None),
    ),
    (
        "soa then ns is nodata",
        Reply(
            authority=[
                ("example.org.", "SOA", "ns. h. 1 2 3 4 5"),
                ("example.org.", "NS", "ns.example.net."),
            ]
        ),
        (Status.NODATA, (), None),
    ),
    (
        "neither ns nor soa",
        Reply(authority=[("example.org.", "NSEC", "zz.example.org. A")]),
        (Status.NODATA, (), None),
    ),
    (
        "aa ns is not a referral",
        Reply(authority=[("example.org.", "NS", "ns.example.net.")], aa=True),
        (Status.NODATA, (), None),
    ),
    (
        "ns beside an answer is not a referral",
        Reply(
            answer=[(QNAME, "CNAME", "b.example.net.")],
            authority=[("example.net.", "NS", "ns.example.net.")],
        ),
        (Status.NODATA, (), None),
    ),
    ("nxdomain", Reply(rcode=dns.rcode.NXDOMAIN), (Status.NXDOMAIN, (), None)),
    (
        "cname to nxdomain",
        Reply(
            rcode=dns.rcode.NXDOMAIN,
            answer=[(QNAME, "CNAME", "b.example.net.")],
            authority=[("example.net.", "SOA", "ns. h. 1 2 3 4 5")],
        ),
        (Status.NXDOMAIN, (), None),
    ),
    ("servfail", Reply(rcode=dns.rcode.SERVFAIL), (Status.SERVFAIL, (), None)),
    ("refused", Reply(rcode=dns.rcode.REFUSED), (Status.REFUSED, (), None)),
]


@pytest.mark.parametrize(("case", "spec", "expected"), FAST_CASES, ids=[c[0] for c in FAST_CASES])
@pytest.mark.parametrize("rdtype", ["A", "AAAA"])
def test_read_fast_reads_the_common_replies_itself_as_dnspython_does(
    case: str,
    spec: Reply,
    expected: tuple[Status, tuple[str, ...], str | None],
    rdtype: str,
) -> None:
    code = A
    if rdtype == "AAAA":
        code = AAAA
        spec = {
            **spec,
            "answer": [
                (o, "AAAA", v6(t)) if k == "A" else (o, k, t) for o, k, t in spec.get("answer", [])
            ],
        }
        status, answers, detail = expected
        expected = (status, tuple(sorted(v6(a) for a in answers)), detail)
    wire = reply_to(rdtype=rdtype, **spec)
    question = Question.of("www.example.org", code)
    fast = read_fast(wire, question)
    assert isinstance(fast, Reading)  # not UNREAD: the fast reader answered by itself
    assert fast[:4] == Reading(*expected)[:4]
    assert oracle(wire, QNAME, code) == expected
    slow = read_with_dnspython(wire, question)
    assert slow is not None and fast.evidence == slow.evidence
    assert read_reply(wire, question) == fast


# (case, reply, asked type, what it says)
DNSPYTHON_CASES: list[tuple[str, bytes, int, Reading | None]] = [
    (
        "compressed question",
        packet([rr(TO_QUESTION, A, bytes((192, 0, 2, 1)))], qname=COMPRESSED),
        A,
        Reading(Status.OK, ("192.0.2.1",)),
    ),
    (
        "compressed question, nxdomain",
        packet(flags=0x8183, qname=COMPRESSED),
        A,
        Reading(Status.NXDOMAIN),
    ),
    (
        "compressed question, truncated",
        packet(flags=0x8180 | 0x0200, qname=COMPRESSED),
        A,
        Reading("truncated", truncated=True),
    ),
    ("compressed question of another type", packet(qname=COMPRESSED, qtype=AAAA), A, None),
    ("compressed question of another class", packet(qname=COMPRESSED, qclass=3), A, None),
    (
        "compressed question for another name",
        packet(qname=name("www.example.com")[:-1] + b"\xc0\x04"),
        A,
        None,
    ),
    ("another name", reply_to(qname="other.example.org"), A, None),
    ("notimp", reply_to(rcode=dns.rcode.NOTIMP), A, Reading(Status.ERROR, detail="rcode NOTIMP")),
    (
        "formerr to aaaa",
        reply_to(rdtype="AAAA", rcode=dns.rcode.FORMERR),
        AAAA,
        Reading(Status.ERROR, detail="rcode FORMERR"),
    ),
    (
        "yxdomain",
        reply_to(rcode=dns.rcode.YXDOMAIN),
        A,
        Reading(Status.ERROR, detail="rcode YXDOMAIN"),
    ),
    (
        "mx",
        reply_to(rdtype="MX", answer=[(QNAME, "MX", "10 mx.example.net.")]),
        MX,
        Reading(Status.OK, ("10 mx.example.net.",)),
    ),
    (
        "mx nodata",
        reply_to(rdtype="MX", authority=[("example.org.", "SOA", "ns. h. 1 2 3 4 5")]),
        MX,
        Reading(Status.NODATA, evidence=Evidence(soa="example.org")),
    ),
    (
        "ns referral",
        reply_to(rdtype="NS", authority=[("example.org.", "NS", "ns.example.net.")]),
        NS,
        Reading(Status.REFERRAL),
    ),
    (
        "cname question",
        reply_to(rdtype="CNAME", answer=[(QNAME, "CNAME", "b.example.net.")]),
        CNAME,
        Reading(Status.OK, ("b.example.net.",)),
    ),
    (
        "cname loop past the qname",
        packet(
            [
                rr(TO_QUESTION, CNAME, name("b.example.net")),
                rr(name("b.example.net"), CNAME, name("c.example.net")),
                rr(name("c.example.net"), CNAME, name("b.example.net")),
            ],
            qname=COMPRESSED,
        ),
        A,
        Reading(
            Status.ERROR,
            detail="CNAME loop",
            evidence=Evidence(cname=("b.example.net", "c.example.net")),
        ),
    ),
]


@pytest.mark.parametrize(
    ("case", "wire", "rdtype", "expected"), DNSPYTHON_CASES, ids=[c[0] for c in DNSPYTHON_CASES]
)
def test_read_fast_leaves_the_rare_replies_to_dnspython(
    case: str, wire: bytes, rdtype: int, expected: Reading | None
) -> None:
    question = Question.of("www.example.org", rdtype)
    assert read_fast(wire, question) is UNREAD
    assert read_with_dnspython(wire, question) == expected
    assert read_reply(wire, question) == expected


@pytest.mark.parametrize(
    ("case", "wire", "rdtype"),
    [
        ("another type", reply_to(rdtype="AAAA"), A),
        ("another class", packet(qclass=3), A),
        ("a query, not a response", query_wire(ASKED), A),
        ("no question", struct.pack("!HHHHHH", 0, 0x8180, 0, 0, 0, 0), A),
        ("two questions", packet()[:4] + b"\x00\x02" + packet()[6:] + packet()[12:], A),
    ],
)
def test_read_fast_does_not_believe_a_reply_to_another_question(
    case: str, wire: bytes, rdtype: int
) -> None:
    question = Question.of("www.example.org", rdtype)
    assert read_fast(wire, question) is None
    assert read_reply(wire, question) is None


def test_read_with_dnspython_does_not_believe_a_reply_without_one_question() -> None:
    message = dns.message.from_wire(reply_to())
    message.question = []
    assert read_with_dnspython(message.to_wire(), ASKED) is None


@pytest.mark.parametrize("rdtype", [A, AAAA, MX, NS])
def test_read_fast_reads_truncation_for_any_type(rdtype: int) -> None:
    kind = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))
    wire = reply_to(rdtype=kind, tc=True)
    question = Question.of("www.example.org", rdtype)
    assert read_fast(wire, question) == Reading("truncated", truncated=True)
    assert read_reply(wire, question) == Reading("truncated", truncated=True)


@pytest.mark.parametrize("rdtype", [A, AAAA])
def test_read_fast_reads_names_written_out_in_full(rdtype: int) -> None:
    long_label = "a" * 63
    address = bytes(4) if rdtype == A else bytes(16)
    wire = packet(
        [
            rr(name("www.example.org"), CNAME, name(f"{long_label}.example.net")),
            rr(name(f"{long_label}.EXAMPLE.net"), rdtype, address),
        ],
        [rr(name("example.net"), NS, name("ns.example.net"))],
        qname=name("WWW.example.org"),
        qtype=rdtype,
    )
    expected = Reading(
        Status.OK,
        ("0.0.0.0",) if rdtype == A else ("::",),
        evidence=Evidence(cname=(f"{long_label}.example.net",)),
    )
    assert read_fast(wire, Question.of("www.example.org", rdtype)) == expected
    assert oracle(wire, QNAME, rdtype) == tuple(expected[:3])


def test_read_fast_reads_names_compressed_past_offset_255() -> None:
    # Filler puts the CNAME's target at offset 268 = 0x10C, so a pointer to it is C1 0C: its
    # second byte is the question's offset, and it must not be taken for the question.
    target = name("b.example.net")
    filler = rr(name("pad.example.org"), 65280, bytes(196))  # a private type: ignored
    head = packet([filler, rr(TO_QUESTION, CNAME, b"")])
    assert len(head) == 268
    wire = packet(
        [
            filler,
            rr(TO_QUESTION, CNAME, target),
            rr(target, A, bytes((192, 0, 2, 1))),
            rr(b"\xc1\x0c", A, bytes((192, 0, 2, 2))),
        ]
    )
    expected = Reading(
        Status.OK, ("192.0.2.1", "192.0.2.2"), evidence=Evidence(cname=("b.example.net",))
    )
    assert read_fast(wire, ASKED) == expected
    assert oracle(wire, QNAME, A) == tuple(expected[:3])


def pointer_chain(hops: int) -> bytes:
    """Return a reply whose CNAME target is reached through ``hops`` compression pointers."""
    base = len(packet([rr(name("pad.example.org"), 65280, b"")]))
    chain = name("b.example.net")
    last = base
    for _ in range(hops - 1):
        here = base + len(chain)
        chain += struct.pack("!H", 0xC000 | last)
        last = here
    filler = rr(name("pad.example.org"), 65280, chain)
    return packet(
        [
            filler,
            rr(TO_QUESTION, CNAME, struct.pack("!H", 0xC000 | last)),
            rr(name("b.example.net"), A, bytes((192, 0, 2, 1))),
        ]
    )


def test_a_name_may_take_64_pointers_but_not_65() -> None:
    assert read_fast(pointer_chain(64), ASKED) == Reading(
        Status.OK, ("192.0.2.1",), evidence=Evidence(cname=("b.example.net",))
    )
    with pytest.raises(MalformedReply, match=r"^compression loop$"):
        read_fast(pointer_chain(65), ASKED)


def labels(*sizes: int) -> bytes:
    return b"".join(bytes((n,)) + b"x" * n for n in sizes) + b"\0"


def test_a_name_of_255_octets_reads_and_one_of_256_does_not() -> None:
    longest = packet([rr(TO_QUESTION, CNAME, labels(63, 63, 63, 61))])
    assert len(labels(63, 63, 63, 61)) == 255
    longest_text = ".".join("x" * n for n in (63, 63, 63, 61))
    assert read_fast(longest, ASKED) == Reading(
        Status.NODATA, evidence=Evidence(cname=(longest_text,))
    )
    with pytest.raises(MalformedReply, match=r"^name too long$"):
        read_fast(packet([rr(TO_QUESTION, CNAME, labels(63, 63, 63, 62))]), ASKED)


IPV4 = bytes((192, 0, 2, 1))
QUESTION_END = len(packet())
# (case, reply, the MalformedReply's text: what a user sees as "malformed reply: ...")
HOSTILE = [
    ("empty", b"", "shorter than a header"),
    ("short header", bytes(11), "shorter than a header"),
    ("owner label past the end", packet(counts=(1, 0)) + b"\x05ab", "label runs past the end"),
    ("cut after a label", packet(counts=(1, 0)) + b"\x02ab", "truncated record: IndexError"),
    (
        "cut in a record's header",
        packet(counts=(1, 0)) + TO_QUESTION + b"\0\1",
        "truncated record: error",
    ),
    ("cut in an address", packet([rr(TO_QUESTION, A, IPV4)])[:-2], "record data runs past the end"),
    ("address of 5 octets", packet([rr(TO_QUESTION, A, IPV4 + b"\0")]), "bad address length"),
    ("address of 16 octets in A", packet([rr(TO_QUESTION, A, bytes(16))]), "bad address length"),
    (
        "cname longer than its data",
        packet([rr(TO_QUESTION, CNAME, b"\x01b")]) + b"\0",
        "CNAME runs past its data",
    ),
    (
        "owner pointing to itself",
        packet(counts=(1, 0)) + struct.pack("!H", 0xC000 | QUESTION_END),
        "compression loop",
    ),
    # 0x40 and 0x80 are the label types RFC 6891 and RFC 1035 reserve.
    ("label type 0x40", packet([rr(b"\x40" + b"x" * 64 + b"\0", A, IPV4)]), "unknown label type"),
    ("label type 0x80", packet([rr(b"\x80\0", A, IPV4)]), "unknown label type"),
    # Offset 13 is the question name's first letter, "w": not a label length.
    ("owner pointing into a label", packet([rr(b"\xc0\x0d", A, IPV4)]), "unknown label type"),
    (
        "authority record past the end",
        packet(authority=[rr(name("example.org"), NS, name("ns.example.net"))])[:-3],
        "record data runs past the end",
    ),
    (
        "authority cut in a record's header",
        packet(counts=(0, 1)) + TO_QUESTION + b"\0\2\0",
        "truncated record: error",
    ),
    ("question cut short", packet()[:-2], "FormError"),
    (
        "compressed question with a bad pointer",
        packet(qname=name("www")[:-1] + b"\xc0\x20"),
        "BadPointer",
    ),
]


@pytest.mark.parametrize(("case", "wire", "detail"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_replies_are_malformed_with_a_reason(case: str, wire: bytes, detail: str) -> None:
    with pytest.raises(MalformedReply) as caught:
        read_reply(wire, ASKED)
    assert str(caught.value) == detail


@pytest.mark.parametrize(
    "wire",
    [b"", b"\x00" * 11, reply_to()[:20], reply_to(answer=[(QNAME, "A", "1.2.3.4")])[:-2]],
)
def test_short_replies_are_malformed(wire: bytes) -> None:
    with pytest.raises(MalformedReply):
        read_reply(wire, ASKED)


@pytest.mark.parametrize(
    ("domain", "wire"),
    [
        ("www.example.org", b"\x03www\x07example\x03org\x00"),
        ("WWW.Example.ORG", b"\x03www\x07example\x03org\x00"),
        ("a.b", b"\x01a\x01b\x00"),
        ("", b"\x00"),  # the root
        ("a" * 63, b"\x3f" + b"a" * 63 + b"\x00"),
        (".".join(["x" * 63] * 3 + ["x" * 61]), labels(63, 63, 63, 61)),
    ],
)
def test_question_of_a_domain(domain: str, wire: bytes) -> None:
    assert Question.of(domain, AAAA) == Question(wire, AAAA)


@pytest.mark.parametrize(
    ("domain", "reason"),
    [
        ("a..b", "bad label in 'a..b'"),
        ("a.", "bad label in 'a.'"),
        ("a" * 64, f"bad label in '{'a' * 64}'"),
        (".".join(["x" * 63] * 3 + ["x" * 62]), "name too long: "),
    ],
)
def test_question_of_a_bad_domain(domain: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        Question.of(domain, A)
    assert str(caught.value).startswith(reason)


def dnspython_query(domain: str, rdtype: int, payload: int, flags: int) -> bytes:
    query = dns.message.make_query(
        domain, dns.rdatatype.RdataType.make(rdtype), use_edns=0, payload=payload
    )
    query.id = 0
    query.flags = flags
    return query.to_wire()


@pytest.mark.parametrize("payload", [512, 1232, 4096, 65535])
@pytest.mark.parametrize("recursion", [True, False])
def test_query_wire_is_the_query_dnspython_writes(payload: int, recursion: bool) -> None:
    question = Question.of("www.example.org", AAAA)
    wire = query_wire(question, recursion=recursion, payload=payload)
    flags = dns.flags.RD if recursion else 0
    assert wire == dnspython_query("www.example.org", AAAA, payload, flags)
    message = dns.message.from_wire(wire)
    assert message.edns == 0 and message.ednsflags == 0 and message.payload == payload


def test_a_query_is_recursive_with_a_1232_octet_payload_by_default() -> None:
    question = Question.of("www.example.org", A)
    expected = dnspython_query("www.example.org", A, 1232, dns.flags.RD)
    assert query_wire(question) == expected
    # The engine patches in the ID and writes the question name between these two.
    assert b"\0\0" + query_head() + question.wire + query_tail(A) == expected
    assert query_head(recursion=False) == struct.pack("!HHHHH", 0, 1, 0, 0, 1)


@pytest.mark.parametrize(("text", "code"), [("A", 1), ("AAAA", 28), ("aaaa", 28), ("MX", 15)])
def test_rdtype_code(text: str, code: int) -> None:
    assert rdtype_code(text) == code


VALID = reply_to(answer=[(QNAME, "CNAME", "b.example.net."), ("b.example.net.", "A", "1.2.3.4")])
REFERRAL = reply_to(
    authority=[("example.org.", "NS", "ns.example.net."), ("org.", "SOA", "ns. h. 1 2 3 4 5")]
)


def test_the_seeds_of_the_mutated_replies_are_read_fast() -> None:
    assert read_fast(VALID, ASKED) == Reading(
        Status.OK, ("1.2.3.4",), evidence=Evidence(cname=("b.example.net",))
    )
    assert read_fast(REFERRAL, ASKED) == Reading(Status.NODATA, evidence=Evidence(soa="org"))


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_malformed(data: bytes) -> None:
    with contextlib.suppress(MalformedReply):
        read_reply(data, ASKED)


@settings(max_examples=3000, deadline=None)
@given(
    st.sampled_from([VALID, REFERRAL]).flatmap(
        lambda seed: st.tuples(
            st.just(seed),
            st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)), max_size=6),
        )
    )
)
def test_mutated_replies_only_raise_malformed_and_agree_when_both_parse(
    seeded: tuple[bytes, list[tuple[int, int]]],
) -> None:
    seed, mutations = seeded
    data = bytearray(seed)
    for position, value in mutations:
        data[position] = value
    try:
        reading = read_fast(bytes(data), ASKED)
    except MalformedReply:
        return
    if reading is UNREAD:
        with contextlib.suppress(MalformedReply):
            read_reply(bytes(data), ASKED)
        return
    if reading is None or reading.truncated:
        return
    try:
        message = dns.message.from_wire(bytes(data))
    except Exception:
        return  # we read less of the message than dnspython checks (the additional section)
    if message.rcode() not in (
        dns.rcode.NOERROR,
        dns.rcode.NXDOMAIN,
        dns.rcode.SERVFAIL,
        dns.rcode.REFUSED,
    ):
        return  # an extended rcode, from an OPT record: the fast reader reads only the header's
    # The fast reader read this reply by itself, so this compares two readers, not one.
    assert reading[:3] == classify(message, dns.name.from_text(QNAME), A)


# ----------------------------------------------------------------------------- evidence

SOA_TEXT = "ns. h. 1 2 3 4 5"
# (case, reply, what the reading says about an A question: status, answers, evidence)
EVIDENCE_CASES: list[tuple[str, bytes, Status, tuple[str, ...], Evidence]] = [
    (
        "an rpz nxdomain labelled blocked, with a text (powerdns)",
        reply_to(rcode=dns.rcode.NXDOMAIN, ede=[(15, "blocked by the national registry")]),
        Status.NXDOMAIN,
        (),
        Evidence(ede=((15, "blocked by the national registry"),)),
    ),
    (
        "a forged answer labelled so, authoritative (knot's ANSWER)",
        reply_to(answer=[(QNAME, "A", "198.18.0.1")], ede=[(4, "5DO5")], aa=True),
        Status.OK,
        ("198.18.0.1",),
        Evidence(ede=((4, "5DO5"),), aa=True),
    ),
    (
        "a refusal declared prohibited (knot's REFUSE)",
        reply_to(rcode=dns.rcode.REFUSED, ede=[(18, "EIM4")]),
        Status.REFUSED,
        (),
        Evidence(ede=((18, "EIM4"),)),
    ),
    (
        "a servfail declared prohibited (knot's DROP)",
        reply_to(rcode=dns.rcode.SERVFAIL, ede=[(18, None)]),
        Status.SERVFAIL,
        (),
        Evidence(ede=((18, ""),)),
    ),
    (
        "two errors",
        reply_to(rcode=dns.rcode.NXDOMAIN, ede=[(15, "one"), (16, "two")]),
        Status.NXDOMAIN,
        (),
        Evidence(ede=((15, "one"), (16, "two"))),
    ),
    (
        "a text longer than kept",
        reply_to(answer=[(QNAME, "A", "192.0.2.9")], ede=[(17, "x" * 500)]),
        Status.OK,
        ("192.0.2.9",),
        Evidence(ede=((17, "x" * MAX_EDE_TEXT),)),
    ),
    (
        "a genuine nxdomain: its zone's soa",
        reply_to(rcode=dns.rcode.NXDOMAIN, authority=[("example.org.", "SOA", SOA_TEXT)]),
        Status.NXDOMAIN,
        (),
        Evidence(soa="example.org"),
    ),
    (
        "bind's rpz: the policy zone's soa in the additional section",
        reply_to(rcode=dns.rcode.NXDOMAIN, additional=[("rpz.isp.", "SOA", SOA_TEXT)], ede=[]),
        Status.NXDOMAIN,
        (),
        Evidence(soa="rpz.isp"),
    ),
    (
        "an soa in authority wins over one in additional",
        reply_to(
            rcode=dns.rcode.NXDOMAIN,
            authority=[("example.org.", "SOA", SOA_TEXT)],
            additional=[("rpz.isp.", "SOA", SOA_TEXT)],
        ),
        Status.NXDOMAIN,
        (),
        Evidence(soa="example.org"),
    ),
    (
        "a chain that ends in nxdomain",
        reply_to(
            rcode=dns.rcode.NXDOMAIN,
            answer=[(QNAME, "CNAME", "b.example.net."), ("b.example.net.", "CNAME", "c.example.")],
            authority=[(".", "SOA", SOA_TEXT)],
        ),
        Status.NXDOMAIN,
        (),
        Evidence(cname=("b.example.net", "c.example"), soa="."),
    ),
    (
        "a walled garden through a cname",
        reply_to(
            answer=[
                (QNAME, "CNAME", "warning.isp.example."),
                ("warning.isp.example.", "A", "192.0.2.80"),
            ]
        ),
        Status.OK,
        ("192.0.2.80",),
        Evidence(cname=("warning.isp.example",)),
    ),
    (
        "an authoritative nodata",
        reply_to(authority=[("example.org.", "SOA", SOA_TEXT)], aa=True),
        Status.NODATA,
        (),
        Evidence(soa="example.org", aa=True),
    ),
    (
        "an opt record without options",
        reply_to(answer=[(QNAME, "A", "192.0.2.9")], ede=[]),
        Status.OK,
        ("192.0.2.9",),
        NO_EVIDENCE,
    ),
]


@pytest.mark.parametrize(
    ("case", "wire", "status", "answers", "evidence"),
    EVIDENCE_CASES,
    ids=[c[0] for c in EVIDENCE_CASES],
)
def test_the_fast_reader_keeps_the_evidence_as_dnspython_reads_it(
    case: str, wire: bytes, status: Status, answers: tuple[str, ...], evidence: Evidence
) -> None:
    fast = read_fast(wire, ASKED)
    assert fast == Reading(status, answers, None, False, evidence)
    slow = read_with_dnspython(wire, ASKED)
    assert slow == fast


def test_a_common_reply_shares_one_empty_evidence() -> None:
    """A million replies without evidence must not make a million objects."""
    for wire in (
        reply_to(answer=[(QNAME, "A", "192.0.2.9")]),
        reply_to(answer=[(QNAME, "A", "192.0.2.9")], ede=[]),
        reply_to(rcode=dns.rcode.SERVFAIL),
        reply_to(rcode=dns.rcode.NXDOMAIN),
        reply_to(),  # NODATA without an SOA
        reply_to(authority=[("example.org.", "NS", "ns.example.net.")]),  # a referral
    ):
        reading = read_fast(wire, ASKED)
        assert isinstance(reading, Reading) and reading.evidence is NO_EVIDENCE
        if not reading.answers:  # one shared reading, not one a reply
            assert read_fast(wire, ASKED) is reading


def test_negative_answers_of_one_zone_share_one_evidence() -> None:
    """Every NXDOMAIN and NODATA carries its zone's SOA: a million of them, a few objects."""
    soa = [("example.org.", "SOA", "ns.example.org. host.example.org. 1 2 3 4 5")]
    first = read_fast(reply_to(rcode=dns.rcode.NXDOMAIN, authority=soa), ASKED)
    nodata = reply_to(authority=soa)
    again = read_fast(nodata, ASKED)
    assert isinstance(first, Reading) and isinstance(again, Reading)
    assert first.evidence == Evidence(soa="example.org")
    assert again.evidence is first.evidence and again.status is Status.NODATA
    authoritative = read_fast(reply_to(authority=soa, aa=True), ASKED)
    assert authoritative.evidence == Evidence(soa="example.org", aa=True)  # type: ignore[union-attr]
    # more zones than are kept: each still has its own SOA
    for n in range(wire_module._MAX_ZONES + 10):
        zone = f"z{n}.example."
        wire = reply_to(
            qname=f"www.{zone}",
            rcode=dns.rcode.NXDOMAIN,
            authority=[(zone, "SOA", f"ns.{zone} host.{zone} 1 2 3 4 5")],
        )
        reading = read_fast(wire, Question.of(f"www.z{n}.example", A))
        assert reading.evidence.soa == f"z{n}.example"  # type: ignore[union-attr]
    assert wire_module._soa_only.cache_info().currsize <= wire_module._MAX_ZONES


def test_an_extended_rcode_is_left_to_dnspython() -> None:
    message = dns.message.from_wire(reply_to(ede=[]))
    message.set_rcode(dns.rcode.BADVERS)  # 16: the low bits in the header, the rest in OPT
    wire = message.to_wire()
    assert read_fast(wire, ASKED) is UNREAD
    assert read_reply(wire, ASKED) == Reading(Status.ERROR, detail="rcode BADVERS")


def opt_with(options: bytes) -> bytes:
    """Return an OPT record (payload 1232) holding ``options`` as written."""
    return b"\0" + struct.pack("!HHIH", 41, 1232, 0, len(options)) + options


def with_additional(wire: bytes, *records: bytes) -> bytes:
    count = struct.unpack_from("!H", wire, 10)[0]
    return wire[:10] + struct.pack("!H", count + len(records)) + wire[12:] + b"".join(records)


def test_a_text_ending_in_nul_or_not_utf8_is_read_as_text() -> None:
    # Some resolvers end the text with a NUL, which RFC 8914 allows; bytes that are not UTF-8
    # come from whoever answers and are kept as U+FFFD, never raised.
    ended = struct.pack("!HHH", 15, 2 + 4, 15) + b"rpz\0"
    broken = struct.pack("!HHH", 15, 2 + 3, 16) + b"\xff\xfeA"
    wire = with_additional(packet(flags=0x8183), opt_with(ended + broken))
    assert read_fast(wire, ASKED) == Reading(
        Status.NXDOMAIN, evidence=Evidence(ede=((15, "rpz"), (16, "\ufffd\ufffdA")))
    )


def test_more_errors_than_kept_are_cut() -> None:
    options = b"".join(struct.pack("!HHH", 15, 3, 15) + b"x" for _ in range(MAX_EDE + 3))
    wire = with_additional(packet(flags=0x8183), opt_with(options))
    reading = read_fast(wire, ASKED)
    assert isinstance(reading, Reading) and reading.evidence.ede == ((15, "x"),) * MAX_EDE


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (struct.pack("!HH", 15, 10) + b"\0\x0f", "EDNS option runs past its record"),
        (struct.pack("!HH", 15, 2) + b"\0\x0f" + b"\0", "EDNS option runs past its record"),
    ],
    ids=["longer than its record", "a stray byte after the options"],
)
def test_a_broken_opt_record_is_malformed(options: bytes, reason: str) -> None:
    wire = with_additional(packet(flags=0x8183), opt_with(options))
    with pytest.raises(MalformedReply, match=f"^{reason}$"):
        read_fast(wire, ASKED)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 65535), st.text(max_size=200)), min_size=0, max_size=4),
    st.sampled_from([dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL]),
)
def test_any_extended_errors_read_as_dnspython_reads_them(
    errors: list[tuple[int, str]], rcode: dns.rcode.Rcode
) -> None:
    answer = [(QNAME, "A", "192.0.2.9")] if rcode == dns.rcode.NOERROR else []
    wire = reply_to(rcode=rcode, answer=answer, ede=[(c, t or None) for c, t in errors])
    fast = read_fast(wire, ASKED)
    assert isinstance(fast, Reading)
    assert fast == read_with_dnspython(wire, ASKED)
    assert all(len(text) <= MAX_EDE_TEXT for _, text in fast.evidence.ede)


def test_an_extended_rcode_beside_options_is_left_to_dnspython_too() -> None:
    badvers = b"\0" + struct.pack("!HHIH", 41, 1232, 1 << 24, 6) + struct.pack("!HHH", 15, 2, 18)
    wire = with_additional(packet(flags=0x8180), badvers)
    assert read_fast(wire, ASKED) is UNREAD
    # the DO bit and the EDNS version share the TTL field: they are no rcode
    flags_only = b"\0" + struct.pack("!HHIH", 41, 1232, 0x8000, 6) + struct.pack("!HHH", 15, 2, 18)
    wire = with_additional(packet(flags=0x8183), flags_only)
    assert read_fast(wire, ASKED) == Reading(Status.NXDOMAIN, evidence=Evidence(ede=((18, ""),)))


def test_an_empty_option_at_the_end_of_the_opt_record_is_read() -> None:
    options = struct.pack("!HHH", 15, 2, 15) + struct.pack("!HH", 12, 0)  # EDE, then padding
    wire = with_additional(packet(flags=0x8183), opt_with(options))
    assert read_fast(wire, ASKED) == Reading(Status.NXDOMAIN, evidence=Evidence(ede=((15, ""),)))


def test_only_an_soa_in_additional_names_a_zone_not_glue() -> None:
    glue = rr(name("ns.example.net"), A, bytes((192, 0, 2, 53)))
    wire = with_additional(packet(flags=0x8183), glue, opt_with(b""))
    assert read_fast(wire, ASKED) == Reading(Status.NXDOMAIN)


def test_a_referral_keeps_its_evidence() -> None:
    wire = reply_to(authority=[("example.org.", "NS", "ns.example.net.")], ede=[(20, "")])
    assert read_fast(wire, ASKED) == Reading(Status.REFERRAL, evidence=Evidence(ede=((20, ""),)))


def test_the_full_parser_names_the_root_zone_as_the_fast_one_does() -> None:
    # A compressed question goes to dnspython; its NXDOMAIN carries the root zone's SOA.
    root_soa = rr(b"\0", SOA, name("ns.lab-root") + name("h.lab-root") + bytes(20))
    wire = packet(authority=[root_soa], flags=0x8183, qname=COMPRESSED)
    assert read_fast(wire, ASKED) is UNREAD
    assert read_with_dnspython(wire, ASKED) == Reading(Status.NXDOMAIN, evidence=Evidence(soa="."))


def test_an_soa_after_a_bare_opt_record_is_still_read() -> None:
    # The glance at one bare OPT record must not skip a second additional record.
    zone_soa = rr(name("rpz.isp"), SOA, name("ns.rpz.isp") + name("h.rpz.isp") + bytes(20))
    wire = with_additional(packet(flags=0x8183), opt_with(b""), zone_soa)
    assert read_fast(wire, ASKED) == Reading(Status.NXDOMAIN, evidence=Evidence(soa="rpz.isp"))
    assert read_with_dnspython(wire, ASKED) == read_fast(wire, ASKED)


def test_an_opt_record_of_256_octets_is_read_whole() -> None:
    # Its length's low octet is 0, as a bare OPT record's is: only the high one differs.
    text = b"t" * 250
    options = struct.pack("!HHH", 15, 2 + len(text), 16) + text
    assert len(options) == 256
    wire = with_additional(packet(flags=0x8183), opt_with(options))
    expected = Reading(Status.NXDOMAIN, evidence=Evidence(ede=((16, "t" * MAX_EDE_TEXT),)))
    assert read_fast(wire, ASKED) == expected


# A label of any bytes, or of the bytes that dnspython writes with an escape, or not.
LABELS = st.one_of(
    st.binary(min_size=1, max_size=12),
    st.lists(st.sampled_from(list(b'aZ9-_.\\" ();@$*\x00\x7f\xc3')), min_size=1, max_size=6).map(
        bytes
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(LABELS, min_size=0, max_size=4), st.lists(LABELS, min_size=1, max_size=3))
def test_any_soa_owner_and_cname_target_read_as_dnspython_writes_them(
    soa_labels: list[bytes], target_labels: list[bytes]
) -> None:
    # Names come from whoever answers: the fast reader joins plain ones itself and must write
    # every other byte (dots, backslashes, spaces, upper case, non-ASCII) as dnspython does.
    soa = dns.name.Name([*soa_labels, b""])
    target = dns.name.Name([*target_labels, b""])
    nxdomain = reply_to(rcode=dns.rcode.NXDOMAIN)
    message = dns.message.from_wire(nxdomain)
    message.authority.append(
        dns.rrset.from_rdata(soa, 60, dns.rdata.from_text("IN", "SOA", "ns. host. 1 2 3 4 5"))
    )
    alias = dns.message.from_wire(reply_to())
    alias.answer.append(
        dns.rrset.from_rdata(
            dns.name.from_text(QNAME), 60, dns.rdata.from_text("IN", "CNAME", target.to_text())
        )
    )
    for wire in (message.to_wire(), alias.to_wire()):
        fast = read_fast(wire, ASKED)
        assert isinstance(fast, Reading)
        assert fast == read_with_dnspython(wire, ASKED)
    evidence = read_fast(message.to_wire(), ASKED).evidence  # type: ignore[union-attr]
    assert evidence.soa == ("." if not soa_labels else soa.to_text(omit_final_dot=True).lower())
