"""What a resolver said besides a status, told as people read it: EDEs, CNAME chains, the SOA.

The texts here come from whoever answers (an EDE's text, a chain's names): they are returned
raw, for each output to escape as its own syntax needs (terminal, Markdown, HTML).
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.probe import Observation
from monitor.vocabulary import Status

# RFC 8914 and the IANA registry of Extended DNS Error codes.
EDE_NAMES = {
    0: "Other Error",
    1: "Unsupported DNSKEY Algorithm",
    2: "Unsupported DS Digest Type",
    3: "Stale Answer",
    4: "Forged Answer",
    5: "DNSSEC Indeterminate",
    6: "DNSSEC Bogus",
    7: "Signature Expired",
    8: "Signature Not Yet Valid",
    9: "DNSKEY Missing",
    10: "RRSIGs Missing",
    11: "No Zone Key Bit Set",
    12: "NSEC Missing",
    13: "Cached Error",
    14: "Not Ready",
    15: "Blocked",
    16: "Censored",
    17: "Filtered",
    18: "Prohibited",
    19: "Stale NXDOMAIN Answer",
    20: "Not Authoritative",
    21: "Not Supported",
    22: "No Reachable Authority",
    23: "Network Error",
    24: "Invalid Data",
    25: "Signature Expired before Valid",
    26: "Too Early",
    27: "Unsupported NSEC3 Iterations Value",
    28: "Unable to conform to policy",
    29: "Synthesized",
    30: "Invalid Query Type",
}
MAX_ANSWERS_SHOWN = 4


def ede_name(code: int) -> str:
    """Return "EDE 15 Blocked" for a code (a code the registry does not name: "EDE 4711")."""
    name = EDE_NAMES.get(code)
    return f"EDE {code} {name}" if name else f"EDE {code}"


def ede_said(code: int, text: str) -> str:
    """Return one EDE as people read it: ``EDE 18 Prohibited "EIM4"`` (the text raw)."""
    return f'{ede_name(code)} "{text}"' if text else ede_name(code)


def said(observation: Observation) -> str:
    """Return what one observation says, evidence included, on one line (texts raw):
    ``nxdomain, EDE 15 Blocked "by the registry", no SOA`` or ``ok 10.0.34.34, CNAME → x``."""
    parts = [str(observation.status)]
    if observation.answers:
        shown = list(observation.answers[:MAX_ANSWERS_SHOWN])
        if len(observation.answers) > MAX_ANSWERS_SHOWN:
            shown.append(f"and {len(observation.answers) - MAX_ANSWERS_SHOWN} more")
        parts[0] += " " + " ".join(shown)
    if observation.detail:
        parts.append(observation.detail)
    evidence = observation.evidence
    parts.extend(ede_said(code, text) for code, text in evidence.ede)
    if evidence.cname:
        parts.append("CNAME → " + " → ".join(evidence.cname))
    if evidence.soa is not None:
        parts.append(f"SOA {evidence.soa}")
    elif observation.status in (Status.NXDOMAIN, Status.NODATA):
        parts.append("no SOA")
    if evidence.aa:
        parts.append("AA")
    return ", ".join(parts)


def telling(observations: Sequence[Observation]) -> bool:
    """Return whether a resolver's observations carry evidence worth a line of their own."""
    return any(
        o.evidence.ede
        or o.evidence.cname
        or o.status in (Status.NXDOMAIN, Status.NODATA, Status.SERVFAIL, Status.REFUSED)
        for o in observations
    )
