"""The monitor's vocabulary, each word defined once: query statuses, and the like below.

Python 3.11 looks up a member (``Status.OK``) through ``EnumType.__getattr__``, about 100 ns
each time, so code that runs once per query binds the members it needs to module names.
"""

from __future__ import annotations

from enum import StrEnum


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
