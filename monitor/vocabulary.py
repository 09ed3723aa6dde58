"""The monitor's vocabulary, each word defined once: query statuses, verdicts, and the like.

Python 3.11 looks up a member (``Status.OK``) through ``EnumType.__getattr__``, about 100 ns
each time, so code that runs once per query binds the members it needs to module names.
"""

from __future__ import annotations

import re
from enum import StrEnum

# The name of a vantage point (snapshots/<vantage>/) or of a resolver: [a-z0-9-]+.
SLUG = re.compile(r"[a-z0-9-]+")


class Status(StrEnum):
    """A query's status: what one resolver said about one name and record type (DESIGN.md)."""

    OK = "ok"  # NOERROR with records of the asked type, after any CNAME chain
    NODATA = "nodata"  # NOERROR, the name exists, no records of that type
    NXDOMAIN = "nxdomain"  # also when a CNAME chain ends in NXDOMAIN
    SERVFAIL = "servfail"
    REFUSED = "refused"
    REFERRAL = "referral"  # no answer, NS in authority
    TIMEOUT = "timeout"
    ERROR = "error"  # malformed reply, other rcode, network error; with a detail


# In this order: a status's index is its compact code (verdict.STATUS_CODE).
STATUSES: tuple[Status, ...] = tuple(Status)


class Verdict(StrEnum):
    """The verdict on one domain for one run (DESIGN.md's table)."""

    PRESENT = "present"
    MISSING = "missing"
    FAILING = "failing"
    TAMPERED = "tampered"
    PARTIAL = "partial"
    NATIONAL_ONLY = "national-only"
    GONE = "gone"
    UNSTABLE = "unstable"
    INCONCLUSIVE = "inconclusive"


# The only verdicts that never raise or clear a flag: a day with one keeps the last conclusive.
NOT_CONCLUSIVE: frozenset[str] = frozenset({Verdict.UNSTABLE, Verdict.INCONCLUSIVE})
# The verdicts that flag a domain: a move from one of them to present restores it.
FLAGGED: frozenset[str] = frozenset(
    {Verdict.MISSING, Verdict.FAILING, Verdict.TAMPERED, Verdict.PARTIAL}
)
# Worst first, present last: the order of the report's tables and charts, and of the export's
# columns.
WORST_FIRST: tuple[Verdict, ...] = (
    *(v for v in Verdict if v is not Verdict.PRESENT),
    Verdict.PRESENT,
)


def conclusive(verdict: str) -> bool:
    """Return whether a verdict (perhaps read from a file a person edited) may raise or clear a
    flag."""
    return verdict not in NOT_CONCLUSIVE


class EventKind(StrEnum):
    """What a move between two conclusive verdicts raises (DESIGN.md), worst first."""

    DISAPPEARED = "disappeared"  # into missing
    DEGRADED = "degraded"  # into failing, tampered or partial
    RESTORED = "restored"  # from a flagged verdict into present
    APPEARED = "appeared"  # into national-only
    GONE = "gone"  # into gone


# Worst first: the order in which events are listed and counted.
EVENT_ORDER: tuple[EventKind, ...] = tuple(EventKind)
# The events a subscriber is alerted about (and `run --exit-code` exits 3 on).
ALERTING: frozenset[str] = frozenset({EventKind.DISAPPEARED, EventKind.DEGRADED})


class Health(StrEnum):
    """How a resolver fared this run (resolvers.yaml)."""

    UP = "up"
    DOWN = "down"  # it answered no canary: its observations are not used
    NXDOMAIN_REWRITING = "nxdomain-rewriting"  # in use; its rewrite addresses count as NXDOMAIN


# The healths whose observations count.
USABLE: frozenset[str] = frozenset({Health.UP, Health.NXDOMAIN_REWRITING})


class TcpHealth(StrEnum):
    """Why a udp resolver is not asked over TCP (resolvers.yaml's ``tcp``): it answered a canary
    over UDP but not over TCP, so its re-queries go over UDP (TCP/53 blocked on the path)."""

    REFUSED = "refused"  # the connection was refused
    TIMEOUT = "timeout"  # no answer: connecting, or the query, timed out
    ERROR = "error"  # the connection failed otherwise, or the reply did not parse


class Group(StrEnum):
    """The two groups of resolvers (config.yaml's ``resolvers``), in the file's order."""

    NATIONAL = "national"
    CONTROL = "control"


class ControlJudgement(StrEnum):
    """What the control group says, once its failed and down members are left out."""

    EXISTS = "exists"
    ABSENT = "absent"
    UNSTABLE = "unstable"  # the controls that answered disagree
    INCONCLUSIVE = "inconclusive"  # fewer than min_controls answered


class NationalJudgement(StrEnum):
    """What the national group says, once its failed and down members are left out."""

    EXISTS = "exists"
    ABSENT = "absent"
    FAILED = "failed"  # none answered
    TAMPERED = "tampered"
    SPLIT = "split"  # some say it exists, some that it is absent
