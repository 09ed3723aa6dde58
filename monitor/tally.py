"""The tally of one pass: what every resolver said about every name, one byte each.

Observations are folded into one byte per (resolver, domain, record type) as they arrive (the
status and the flags of :mod:`monitor.verdict`), so a million names fit in a few tens of
megabytes. Beside the bytes, kept only where they can matter: the Extended DNS Errors of the
replies that carried one, the addresses of answers labelled as blocked or forged, the answers
of the names a pass asks to keep, every value the nationals answered with (for suspected block
pages), and, on request (``detail``, for ``check`` and ``--json``), every observation.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from monitor.blockpages import Sightings
from monitor.config import Config
from monitor.probe import Observation
from monitor.verdict import (
    LABELLED,
    NOT_ASKED,
    NOTED,
    STATUS_CODE,
    STATUS_MASK,
    SUSPICIOUS,
    Suspicion,
    apart_from,
    labelled,
)
from monitor.vocabulary import Group, Status

# Bound once: the tally sees every observation (see monitor.vocabulary).
_OK = Status.OK
_NODATA = Status.NODATA
_NXDOMAIN_CODE = STATUS_CODE[Status.NXDOMAIN]
_OK_CODE = STATUS_CODE[Status.OK]
# What a resolver that gave no answer (it timed out, or failed) says: nothing to compare.
NO_ANSWER = frozenset({STATUS_CODE[Status.TIMEOUT], STATUS_CODE[Status.ERROR]})


class Tally:
    """Codes for a list of domains at a set of resolvers, filled in as observations arrive.

    ``keep``: the positions whose answers are kept (every position when True), for comparing
    the addresses of labelled answers with the controls'. ``sightings``: where the values the
    resolvers answered with are noted, for suspected block pages (None: not noted).
    """

    def __init__(
        self,
        config: Config,
        domains: Sequence[str],
        *,
        suspicion: Suspicion,
        rewrites: Mapping[str, frozenset[str]],
        detail: bool = False,
        keep: Collection[int] | bool = (),
        sightings: Sightings | None = None,
    ) -> None:
        self.config = config
        self.domains = domains
        self.width = len(config.record_types)
        self.rewrites = rewrites
        self.suspicion = suspicion
        size = len(domains) * self.width
        self.codes = {r.name: bytearray([NOT_ASKED]) * size for r in config.resolvers}
        self.positions: Sequence[int] | None = None  # the domains a subset pass asks about
        self.detail: dict[int, dict[str, list[Observation | None]]] | None = {} if detail else None
        self.keep: Collection[int] | bool = keep
        # (resolver, index) -> what was kept: the EDEs of a reply, the addresses of an answer
        self.errors: dict[tuple[str, int], tuple[tuple[int, str], ...]] = {}
        self.noted: dict[int, set[str]] = {}  # position -> the resolvers that sent an EDE
        self.answers: dict[tuple[str, int], tuple[str, ...]] = {}
        self.sightings = sightings
        nationals = [r.name for r in config.resolvers if r.group == Group.NATIONAL]
        self.national = {name: n for n, name in enumerate(nationals)}

    def sink(self, index: int, observation: Observation) -> None:
        if self.positions is not None:
            row, column = divmod(index, self.width)
            index = self.positions[row] * self.width + column
        name = observation.resolver
        rewritten = self.rewrites.get(name)
        if rewritten and (
            (observation.status == _OK and rewritten.issuperset(observation.answers))
            or (observation.status == _NODATA and f"nodata:{observation.rdtype}" in rewritten)
        ):
            code = _NXDOMAIN_CODE
        else:
            code = self.suspicion.code_of(observation)
        self.codes[name][index] = code
        if code & NOTED:
            self.errors[(name, index)] = observation.evidence.ede
            self.noted.setdefault(index // self.width, set()).add(name)
        if code & STATUS_MASK == _OK_CODE:
            keep = self.keep
            if (
                code & (LABELLED | SUSPICIOUS)
                or keep is True
                or (keep and index // self.width in keep)
            ):
                self.answers[(name, index)] = observation.answers
            sightings = self.sightings
            if sightings is not None:
                chain = observation.evidence.cname
                n = self.national.get(name)
                if n is None:
                    sightings.control(observation.answers)
                    if chain:
                        sightings.control(chain)
                elif not code & SUSPICIOUS:  # a bogon or a listed page is tampering already
                    position = index // self.width
                    sightings.national(observation.answers, position, n)
                    if chain:
                        sightings.national(chain, position, n)
        if self.detail is not None:
            slots = self.detail.setdefault(index // self.width, {}).setdefault(
                name, [None] * self.width
            )
            slots[index % self.width] = observation

    def codes_of(self, position: int) -> dict[str, bytes]:
        """Return each resolver's codes for one domain, leaving out resolvers not asked."""
        start = position * self.width
        found = {}
        for name, codes in self.codes.items():
            mine = bytes(codes[start : start + self.width])
            if mine[0] != NOT_ASKED:
                found[name] = mine
        return found

    def key_of(self, position: int) -> bytes:
        """Return every resolver's codes for one domain as one string (resolvers in config
        order, NOT_ASKED where one was not asked): all that a verdict from codes depends on."""
        start = position * self.width
        end = start + self.width
        return b"".join([codes[start:end] for codes in self.codes.values()])

    def answers_of(self, resolver: str, position: int) -> dict[int, tuple[str, ...]]:
        """Return the kept addresses of a resolver's ``ok`` answers about one domain, by column."""
        start = position * self.width
        return {
            c: found
            for c in range(self.width)
            if (found := self.answers.get((resolver, start + c))) is not None
        }

    def gave(self, position: int, resolvers: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """Return the kept addresses each of ``resolvers`` answered about one domain, over the
        types, sorted: for a tampered line, which resolver gave which address."""
        found = {}
        for name in resolvers:
            addresses = {a for kept in self.answers_of(name, position).values() for a in kept}
            if addresses:
                found[name] = tuple(sorted(addresses))
        return found

    def errors_of(self, position: int) -> dict[str, tuple[tuple[int, str], ...]]:
        """Return the Extended DNS Errors (code, text) each resolver sent about one domain, over
        the types, without repeats, by code; resolvers in config order."""
        noted = self.noted.get(position)
        if not noted:
            return {}
        start = position * self.width
        found = {}
        for name in self.codes:
            if name in noted:
                said: set[tuple[int, str]] = set()
                for column in range(self.width):
                    said.update(self.errors.get((name, start + column), ()))
                if said:
                    found[name] = tuple(sorted(said))
        return found

    def labelled_positions(self, nationals: Iterable[str]) -> list[int]:
        """Return the positions where a national resolver's ``ok`` answer carries a blocking
        EDE, in order."""
        width = self.width
        wanted = set(nationals)
        found = {index // width for (name, index) in self.answers if name in wanted}
        return sorted(p for p in found if any(labelled(c) for c in self._national_codes(p)))

    def _national_codes(self, position: int) -> list[bytes]:
        codes = self.codes_of(position)
        return [codes[n] for n in self.national if n in codes]

    def apart(
        self,
        position: int,
        nationals: Sequence[str],
        controls: Sequence[str],
        codes: Mapping[str, bytes] | None = None,
    ) -> set[str]:
        """Return the national resolvers whose labelled answers about one domain share no
        address with the controls' answers (see verdict.apart_from); ``codes``: its
        :meth:`codes_of`, when the caller has them."""
        if codes is None:
            codes = self.codes_of(position)
        labelled_nationals = {
            n: self.answers_of(n, position) for n in nationals if n in codes and labelled(codes[n])
        }
        if not labelled_nationals:
            return set()
        theirs = [self.answers_of(c, position) for c in controls if c in codes]
        return set(apart_from(labelled_nationals, theirs))

    def answered(self, resolver: str, position: int) -> bool:
        """Return whether a resolver gave an answer about one domain: asked, and not timed out
        or failed for every type (a refusal is an answer)."""
        start = position * self.width
        codes = self.codes[resolver][start : start + self.width]
        return codes[0] != NOT_ASKED and not all(c & STATUS_MASK in NO_ANSWER for c in codes)

    def adopt(self, position: int, other: Tally, there: int, resolver: str) -> None:
        """Take what ``resolver`` said about one domain in ``other`` (at ``there``) as what it
        said here: its first answer, when it gave none in this pass."""
        width = self.width
        start, source = position * width, there * width
        self.codes[resolver][start : start + width] = other.codes[resolver][source : source + width]
        for column in range(width):
            ede = other.errors.get((resolver, source + column))
            if ede is not None:
                self.errors[(resolver, start + column)] = ede
            addresses = other.answers.get((resolver, source + column))
            if addresses is not None:
                self.answers[(resolver, start + column)] = addresses
        if resolver in other.noted.get(there, ()):
            self.noted.setdefault(position, set()).add(resolver)
        if self.detail is not None and other.detail is not None:
            said = other.detail.get(there, {}).get(resolver)
            if said is not None:
                self.detail.setdefault(position, {})[resolver] = list(said)

    def forget(self, resolver: str) -> None:
        """Leave a resolver's answers out, as if it had not been asked."""
        codes = self.codes[resolver]
        codes[:] = bytearray([NOT_ASKED]) * len(codes)
        self.errors = {k: v for k, v in self.errors.items() if k[0] != resolver}
        self.answers = {k: v for k, v in self.answers.items() if k[0] != resolver}
        for names in self.noted.values():
            names.discard(resolver)
        if self.detail is not None:
            for per_resolver in self.detail.values():
                per_resolver.pop(resolver, None)

    def observations_of(self, position: int) -> dict[str, tuple[Observation, ...]]:
        """Return what each resolver said about one domain, resolvers in config order (not in
        the order their answers arrived, so that a document is the same from run to run)."""
        if self.detail is None:
            return {}
        said = self.detail.get(position, {})
        return {
            name: tuple(o for o in said[name] if o is not None)
            for name in self.codes
            if name in said
        }
