"""What every query ends as: an observation, whose status says what happened."""

from __future__ import annotations

from typing import NamedTuple

from monitor.probe.wire import NO_EVIDENCE, Evidence
from monitor.vocabulary import Status

Job = tuple[str, str]  # (domain as A-label, record type)


class Observation(NamedTuple):
    """What one resolver said about one name and record type."""

    resolver: str
    domain: str
    rdtype: str
    status: Status
    answers: tuple[str, ...] = ()
    detail: str | None = None
    evidence: Evidence = NO_EVIDENCE
