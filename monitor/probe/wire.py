"""DNS messages on the wire, the hot path: build queries and read replies without dnspython.

At a million names every microsecond per query counts, so :func:`read_fast` reads the common
A and AAAA replies directly (RFC 1035 section 4): the header, the question, the answer chain and
the types in the authority section. What it leaves (a compressed question, a rare rcode, another
record type) it returns as :data:`UNREAD`, for :func:`read_with_dnspython`; :func:`read_reply`
does both. Hostile input raises :class:`MalformedReply`, never anything else.
"""

from __future__ import annotations

import enum
import functools
import socket
import struct
from typing import Final, Literal, NamedTuple

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from monitor.vocabulary import Status

A, NS, CNAME, SOA, AAAA = 1, 2, 5, 6, 28
CLASS_IN = 1
FAST_TYPES = frozenset({A, AAAA})

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_QTAIL = struct.Struct("!HH")
_OPTION = struct.Struct("!HH")
_FLAG_QR = 0x8000
_FLAG_AA = 0x0400
_FLAG_TC = 0x0200
_FLAG_RD = 0x0100
_MAX_CHAIN = 16
_MAX_POINTERS = 64
# Big enough for answers with a few dozen addresses, small enough to avoid fragmentation.
EDNS_PAYLOAD = 1232


class _Unread(enum.Enum):
    UNREAD = "unread"


UNREAD: Final = _Unread.UNREAD
"""What :func:`read_fast` returns for a reply only the full parser can read."""


class MalformedReply(Exception):
    """The reply does not parse as a DNS message."""


class Question(NamedTuple):
    """One question: the name in lowercase uncompressed wire form, and the type."""

    wire: bytes
    rdtype: int

    @classmethod
    def of(cls, domain: str, rdtype: int) -> Question:
        """Return the question for an A-label domain (no final dot) and a type code."""
        labels = domain.lower().encode("ascii").split(b".") if domain else []
        parts = []
        for label in labels:
            if not 0 < len(label) < 64:
                raise ValueError(f"bad label in {domain!r}")
            parts.append(bytes((len(label),)) + label)
        wire = b"".join(parts) + b"\0"
        if len(wire) > 255:
            raise ValueError(f"name too long: {domain!r}")
        return cls(wire, rdtype)


class Evidence(NamedTuple):
    """What a reply shows besides its status and answers: how the answer was made.

    ``ede``: its Extended DNS Errors (RFC 8914), (code, text), the text cut to MAX_EDE_TEXT
    characters (it comes from whoever answers); ``cname``: the CNAME chain's target names, in
    order; ``soa``: the owner of the SOA in the authority section (a genuine NXDOMAIN or NODATA
    carries its zone's; a synthesized one often none), or, when authority has none, in the
    additional section (where BIND puts its policy zone's); ``aa``: the AA bit.
    """

    ede: tuple[tuple[int, str], ...] = ()
    cname: tuple[str, ...] = ()
    soa: str | None = None
    aa: bool = False


NO_EVIDENCE = Evidence()
AA_ONLY = Evidence(aa=True)
MAX_EDE_TEXT = 120  # characters of an EDE's text kept
MAX_EDE = 8  # EDE options kept from one reply


class Reading(NamedTuple):
    """What a reply said: a status, the answers (sorted), a detail, whether TC was set, and the
    evidence.

    A truncated reply says nothing yet: its status is "truncated", never an observation's.
    """

    status: Status | Literal["truncated"]
    answers: tuple[str, ...] = ()
    detail: str | None = None
    truncated: bool = False
    evidence: Evidence = NO_EVIDENCE


# Bound once: the reader runs for every reply (see monitor.vocabulary).
_OK = Status.OK
_NODATA_STATUS = Status.NODATA
_REFERRAL_STATUS = Status.REFERRAL
_ERROR = Status.ERROR
_TRUNCATED = Reading("truncated", truncated=True)
_NODATA = Reading(Status.NODATA)
_REFERRAL = Reading(Status.REFERRAL)
# The rcodes read here besides NOERROR; dnspython names the others.
_FAILED = {
    2: Status.SERVFAIL,
    3: Status.NXDOMAIN,
    5: Status.REFUSED,
}
_FAILED_READING = {rcode: Reading(status) for rcode, status in _FAILED.items()}
_OPT = 41
_EDE_OPTION = 15


def query_wire(question: Question, *, recursion: bool = True, payload: int = EDNS_PAYLOAD) -> bytes:
    """Return a query with ID 0 (patch the first two bytes) and an EDNS0 OPT record."""
    return (
        b"\0\0"
        + query_head(recursion=recursion)
        + question.wire
        + query_tail(question.rdtype, payload=payload)
    )


def query_head(*, recursion: bool = True) -> bytes:
    """Return a query's header after its ID: the flags and the section counts."""
    return _HEADER.pack(0, _FLAG_RD if recursion else 0, 1, 0, 0, 1)[2:]


def query_tail(rdtype: int, *, payload: int = EDNS_PAYLOAD) -> bytes:
    """Return what follows the question name: its type and class, and the EDNS0 OPT record."""
    return _QTAIL.pack(rdtype, CLASS_IN) + b"\0" + struct.pack("!HHIH", 41, payload, 0, 0)


def read_reply(data: bytes, question: Question) -> Reading | None:
    """Return what a reply says about ``question``, or None when it answers another question.

    A reply that is not a response (QR clear), or whose question differs, is not believed:
    None. Raises MalformedReply for one that does not parse. (The UDP and TCP read loops in
    monitor.probe.matching spell these three lines out, to save a call a reply.)
    """
    reading = read_fast(data, question)
    if reading is UNREAD:
        return read_with_dnspython(data, question)
    return reading


def read_fast(data: bytes, question: Question) -> Reading | _Unread | None:
    """Return what a common reply says about ``question``, read without dnspython.

    Read here: a reply to an A or AAAA question written out in full (not compressed), with
    rcode NOERROR (addresses, a CNAME chain, NODATA, a referral), NXDOMAIN, SERVFAIL or
    REFUSED, and a truncated (TC) reply to any question written out in full. None as for
    :func:`read_reply`. Anything else is :data:`UNREAD`, for :func:`read_with_dnspython`.
    Raises MalformedReply for a reply that does not parse.
    """
    if len(data) < 12:
        raise MalformedReply("shorter than a header")
    _, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if not flags & _FLAG_QR or qdcount != 1:
        return None
    qlen = len(question.wire)
    end = 12 + qlen
    if data[12:end].lower() != question.wire or len(data) < end + 4:
        # A compressed or odd question: let the full parser decide.
        return UNREAD
    qtype, qclass = _QTAIL.unpack_from(data, end)
    if qtype != question.rdtype or qclass != CLASS_IN:
        return None
    if flags & _FLAG_TC:
        return _TRUNCATED
    if question.rdtype not in FAST_TYPES:
        return UNREAD
    rcode = flags & 0xF
    if rcode and rcode not in _FAILED:
        return UNREAD  # other rcodes are rare: dnspython names them
    try:
        return _read_sections(data, end + 4, ancount, nscount, arcount, flags, question)
    except (IndexError, struct.error) as exc:
        raise MalformedReply(f"truncated record: {type(exc).__name__}") from None


def _name_at(data: bytes, offset: int) -> tuple[bytes, int]:
    """Return the name at ``offset`` (lowercase, uncompressed wire form) and the offset after it."""
    parts = []
    after = -1
    pointers = 0
    size = len(data)
    while True:
        length = data[offset]
        if length == 0:
            offset += 1
            break
        if length >= 0xC0:
            if after < 0:
                after = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            pointers += 1
            if pointers > _MAX_POINTERS:
                raise MalformedReply("compression loop")
            continue
        if length > 63:
            raise MalformedReply("unknown label type")
        stop = offset + 1 + length
        if stop > size:
            raise MalformedReply("label runs past the end")
        parts.append(data[offset:stop])
        offset = stop
    name = b"".join(parts).lower() + b"\0"
    if len(name) > 255:
        raise MalformedReply("name too long")
    return name, after if after >= 0 else offset


def _read_sections(
    data: bytes,
    offset: int,
    ancount: int,
    nscount: int,
    arcount: int,
    flags: int,
    question: Question,
) -> Reading | _Unread:
    """Read the answer, authority and additional sections of a reply whose header and question
    were read; the rcode is NOERROR, NXDOMAIN, SERVFAIL or REFUSED."""
    size = len(data)
    records: dict[bytes, list[bytes]] = {}
    cnames: dict[bytes, bytes] = {}
    qwire = question.wire
    for _ in range(ancount):
        if data[offset] == 0xC0 and data[offset + 1] == 12:
            # The usual owner: a pointer to the question's name, already checked to be ours.
            owner = qwire
            offset += 2
        else:
            owner, offset = _name_at(data, offset)
        rtype, rclass, _, rdlength = _RR.unpack_from(data, offset)
        offset += 10
        rdata_end = offset + rdlength
        if rdata_end > size:
            raise MalformedReply("record data runs past the end")
        if rclass == CLASS_IN:
            if rtype == question.rdtype:
                if rdlength != (4 if rtype == A else 16):
                    raise MalformedReply("bad address length")
                records.setdefault(owner, []).append(data[offset:rdata_end])
            elif rtype == CNAME:
                target, stop = _name_at(data, offset)
                if stop > rdata_end:
                    raise MalformedReply("CNAME runs past its data")
                cnames.setdefault(owner, target)
        offset = rdata_end
    # The usual answer is on the question's name; only without one is a CNAME chain followed.
    found = records.get(qwire) if records else None
    chain: list[bytes] | None = None
    looped = False
    if not found and cnames:
        name = qwire
        seen = {name}
        for _ in range(_MAX_CHAIN):
            alias = cnames.get(name)
            if alias is None:
                break
            if alias in seen:
                looped = True
                break
            seen.add(alias)
            if chain is None:
                chain = []
            chain.append(alias)
            name = alias
            found = records.get(name)
            if found:
                break
    soa: bytes | None = None
    ns = False
    for _ in range(nscount):
        owner, rtype, _, _, offset = _record(data, offset)
        if rtype == SOA:
            if soa is None:
                soa = owner
        elif rtype == NS:
            ns = True
    authority_soa = soa is not None
    ede: tuple[tuple[int, str], ...] = ()
    if arcount:
        if (
            arcount == 1
            and data[offset] == 0
            and data[offset + 1] == 0
            and data[offset + 2] == _OPT
            and data[offset + 9] == 0
            and data[offset + 10] == 0
        ):
            # One OPT record without options: the usual additional section, read at a glance
            # (that data[offset + 10] exists shows the record is whole).
            if data[offset + 5]:
                return UNREAD  # an extended rcode (BADVERS...): dnspython names it
        else:
            ede, extra_soa, extended = _read_additional(data, offset, arcount)
            if extended:
                return UNREAD
            if soa is None:
                soa = extra_soa
    aa = bool(flags & _FLAG_AA)
    if chain is None and not ede:
        evidence = (AA_ONLY if aa else NO_EVIDENCE) if soa is None else _soa_only(soa, aa)
    else:
        evidence = Evidence(
            ede,
            tuple(_name_text(n) for n in chain) if chain else (),
            None if soa is None else _name_text(soa),
            aa,
        )
    rcode = flags & 0xF
    if rcode:
        if evidence is NO_EVIDENCE:
            return _FAILED_READING[rcode]
        return Reading(_FAILED[rcode], (), None, False, evidence)
    if found:
        family = socket.AF_INET if question.rdtype == A else socket.AF_INET6
        answers = tuple(sorted({socket.inet_ntop(family, r) for r in found}))
        return Reading(_OK, answers, None, False, evidence)
    if looped:
        return Reading(_ERROR, (), "CNAME loop", False, evidence)
    if ancount == 0 and not aa and ns and not authority_soa:
        if evidence is NO_EVIDENCE:
            return _REFERRAL
        return Reading(_REFERRAL_STATUS, (), None, False, evidence)
    return (
        _NODATA if evidence is NO_EVIDENCE else Reading(_NODATA_STATUS, (), None, False, evidence)
    )


_MAX_ZONES = 4096


# Every negative answer from a zone carries its SOA: one Evidence a zone, for the zones seen last.
@functools.lru_cache(maxsize=_MAX_ZONES)
def _soa_only(soa: bytes, aa: bool) -> Evidence:
    """Return the evidence of a reply that shows nothing but its SOA and AA bit."""
    return Evidence((), (), _name_text(soa), aa)


def _read_additional(
    data: bytes, offset: int, count: int
) -> tuple[tuple[tuple[int, str], ...], bytes | None, bool]:
    """Return the additional section's Extended DNS Errors, the owner of an SOA in it, and
    whether the OPT record carries an extended rcode."""
    ede: list[tuple[int, str]] = []
    soa: bytes | None = None
    extended = False
    for _ in range(count):
        owner, rtype, ttl, offset, end = _record(data, offset)
        if rtype == _OPT:
            extended = extended or bool(ttl >> 24)
            while offset + 4 <= end:
                code, length = _OPTION.unpack_from(data, offset)
                offset += 4
                if offset + length > end:
                    raise MalformedReply("EDNS option runs past its record")
                if code == _EDE_OPTION and length >= 2 and len(ede) < MAX_EDE:
                    info = (data[offset] << 8) | data[offset + 1]
                    raw = data[offset + 2 : offset + length]
                    if raw[-1:] == b"\0":  # the text may end in a NUL (RFC 8914)
                        raw = raw[:-1]
                    ede.append((info, raw.decode("utf-8", "replace")[:MAX_EDE_TEXT]))
                offset += length
            if offset != end:
                raise MalformedReply("EDNS option runs past its record")
        elif rtype == SOA and soa is None:
            soa = owner
        offset = end
    return tuple(ede), soa, extended


def _record(data: bytes, offset: int) -> tuple[bytes, int, int, int, int]:
    """Return the record at ``offset`` (outside the answer section's hot loop): its owner, type
    and TTL, and where its data starts and ends."""
    owner, offset = _name_at(data, offset)
    rtype, _, ttl, rdlength = _RR.unpack_from(data, offset)
    start = offset + 10
    end = start + rdlength
    if end > len(data):
        raise MalformedReply("record data runs past the end")
    return owner, rtype, ttl, start, end


def _name_text(wire: bytes) -> str:
    """Return a name in uncompressed lowercase wire form as text, without the final dot ("."
    for the root). A name of letters, digits, hyphens and underscores is joined here (it runs
    for the SOA of every negative answer); dnspython writes the others, with its escapes."""
    labels = []
    i = 0
    while wire[i]:
        labels.append(wire[i + 1 : i + 1 + wire[i]])
        i += 1 + wire[i]
    if not labels:
        return "."
    if b"".join(labels).translate(None, _PLAIN):  # a byte dnspython escapes (a dot, say)
        return _dns_name_text(dns.name.Name([*labels, b""]))
    return b".".join(labels).decode("ascii")


_PLAIN = b"abcdefghijklmnopqrstuvwxyz0123456789-_"


def read_with_dnspython(data: bytes, question: Question) -> Reading | None:
    """Return what any reply says about ``question``, as :func:`read_reply` does, with dnspython.

    Slower than :func:`read_fast`, and for the replies it leaves. Raises MalformedReply.
    """
    try:
        reply = dns.message.from_wire(data)
    except Exception as exc:  # dnspython raises many kinds on hostile input
        raise MalformedReply(type(exc).__name__) from None
    if len(reply.question) != 1:
        return None
    q = reply.question[0]
    qname = dns.name.from_wire(question.wire, 0)[0]
    if q.name != qname or q.rdtype != question.rdtype or q.rdclass != CLASS_IN:
        return None
    if reply.flags & _FLAG_TC:
        return _TRUNCATED
    try:
        status, answers, detail = classify(reply, qname, question.rdtype)
        evidence = evidence_of(reply, qname, question.rdtype)
    except dns.exception.DNSException as exc:
        raise MalformedReply(type(exc).__name__) from None
    return Reading(status, answers, detail, False, evidence)


def evidence_of(reply: dns.message.Message, qname: dns.name.Name, rdtype: int) -> Evidence:
    """Return the evidence of a reply already matched to its question, as the fast reader
    reads it."""
    ede = tuple(
        (int(e.code), (e.text or "")[:MAX_EDE_TEXT]) for e in reply.extended_errors()[:MAX_EDE]
    )
    chain: list[dns.name.Name] = []
    name = qname
    seen = {name}
    for _ in range(_MAX_CHAIN):
        if reply.get_rrset(
            reply.answer, name, dns.rdataclass.IN, dns.rdatatype.RdataType.make(rdtype)
        ):
            break
        cname = reply.get_rrset(reply.answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if not cname or rdtype == dns.rdatatype.CNAME or cname[0].target in seen:
            break
        name = cname[0].target
        seen.add(name)
        chain.append(name)
    soa = next((r.name for r in reply.authority if r.rdtype == dns.rdatatype.SOA), None)
    if soa is None:
        soa = next((r.name for r in reply.additional if r.rdtype == dns.rdatatype.SOA), None)
    aa = bool(reply.flags & dns.flags.AA)
    if not (ede or chain or soa is not None):
        return AA_ONLY if aa else NO_EVIDENCE
    return Evidence(
        ede,
        tuple(_dns_name_text(n) for n in chain),
        None if soa is None else _dns_name_text(soa),
        aa,
    )


def _dns_name_text(name: dns.name.Name) -> str:
    return "." if name == dns.name.root else str(name.to_text(omit_final_dot=True)).lower()


def classify(
    reply: dns.message.Message, qname: dns.name.Name, rdtype: int
) -> tuple[Status, tuple[str, ...], str | None]:
    """Return (status, answers, detail) for a reply already matched to its question."""
    rcode = reply.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return Status.NXDOMAIN, (), None
    if rcode == dns.rcode.SERVFAIL:
        return Status.SERVFAIL, (), None
    if rcode == dns.rcode.REFUSED:
        return Status.REFUSED, (), None
    if rcode != dns.rcode.NOERROR:
        return Status.ERROR, (), f"rcode {dns.rcode.to_text(rcode)}"
    name = qname
    seen = {name}
    for _ in range(_MAX_CHAIN):
        rrset = reply.get_rrset(
            reply.answer, name, dns.rdataclass.IN, dns.rdatatype.RdataType.make(rdtype)
        )
        if rrset:
            return Status.OK, tuple(sorted({rr.to_text() for rr in rrset})), None
        cname = reply.get_rrset(reply.answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if not cname or rdtype == dns.rdatatype.CNAME:
            break
        name = cname[0].target
        if name in seen:
            return Status.ERROR, (), "CNAME loop"
        seen.add(name)
    authority = {rrset.rdtype for rrset in reply.authority}
    if (
        not reply.answer
        and dns.rdatatype.NS in authority
        and dns.rdatatype.SOA not in authority
        and not reply.flags & dns.flags.AA
    ):
        return Status.REFERRAL, (), None
    return Status.NODATA, (), None


@functools.cache
def rdtype_code(text: str) -> int:
    """Return the numeric code of a record type name such as ``AAAA``."""
    return int(dns.rdatatype.from_text(text))
