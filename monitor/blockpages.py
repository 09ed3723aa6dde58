"""Suspected block pages: addresses and CNAME targets the nationals give for many names, and no
control gives, found in one pass over every answer at a million names.

A block page (a walled garden) is one address, or one host reached by CNAME, that a censoring
resolver gives for the names it blocks. A name whose national answer is routable and unlabelled
is `present`; only across names does the page show: the nationals give it for at least
MIN_DOMAINS names of different registered domains, while no control gives it for any name. It
is reported, so that a person can list it in ``stub_addresses`` or ``stub_names``; it raises no
flag by itself, since CDN edges differ from country to country.

Every answer passes through :class:`Sightings`, so it is a compact open-addressing table of
64-bit hashes (13 bytes a slot) rather than a dict of strings: the first name that gave a value
is kept as a number, and only values seen for a second name are kept as text, with their names.
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MIN_DOMAINS = 3  # different registered domains for which the nationals give one value
_EMPTY = 0
_MASK = (1 << 64) - 1
_NO_POSITION = 0xFFFFFFFF
_BY_CONTROL = 0x01  # a control gave the value
_FIRST_SIZE = 1 << 12


@dataclass(frozen=True)
class BlockPage:
    """A suspected block page: the address (or CNAME target host name) the nationals gave, the
    national resolvers that gave it, and the watched names they gave it for (A-labels, sorted)."""

    address: str
    resolvers: tuple[str, ...]
    domains: tuple[str, ...]

    def document(self) -> dict[str, object]:
        """Return it as in DESIGN.md's JSON."""
        return {
            "address": self.address,
            "resolvers": list(self.resolvers),
            "domains": list(self.domains),
        }


class Sightings:
    """Every value (an address or a CNAME target) the resolvers answered with, by name.

    :meth:`national` is called for each value the national resolver with index ``n`` gave for
    the name at a position; :meth:`control` for each value a control gave. :meth:`shared` then
    lists the values the nationals gave for more than one name, with those names.
    """

    def __init__(self) -> None:
        self._keys = array("Q", bytes(8 * _FIRST_SIZE))
        self._first = array("I", [_NO_POSITION]) * _FIRST_SIZE
        self._flags = bytearray(_FIRST_SIZE)  # _BY_CONTROL, and a bit per national resolver
        self._used = 0
        # value hash -> (value, positions), once a second name gave it
        self._shared: dict[int, tuple[str, list[int]]] = {}

    def _slot(self, key: int) -> int:
        keys = self._keys
        mask = len(keys) - 1
        i = key & mask
        while True:
            found = keys[i]
            if found in (key, _EMPTY):
                return i
            i = (i + 1) & mask

    def _claim(self, key: int) -> int:
        """Return the slot of ``key``, taking a new one (and growing) when it is not there."""
        i = self._slot(key)
        if self._keys[i] == _EMPTY:
            if 2 * (self._used + 1) > len(self._keys):
                self._grow()
                i = self._slot(key)
            self._keys[i] = key
            self._used += 1
        return i

    def _grow(self) -> None:
        keys, first, flags = self._keys, self._first, self._flags
        size = 2 * len(keys)
        self._keys = array("Q", bytes(8 * size))
        self._first = array("I", [_NO_POSITION]) * size
        self._flags = bytearray(size)
        for old, key in enumerate(keys):
            if key != _EMPTY:
                i = self._slot(key)
                self._keys[i] = key
                self._first[i] = first[old]
                self._flags[i] = flags[old]

    def _find(self, key: int) -> int:
        """Return the slot of ``key``, taking a new one when it is not there: :meth:`_claim`
        with its probe inlined, since every answer comes here (a third of the time it costs)."""
        keys = self._keys
        mask = len(keys) - 1
        i = key & mask
        while True:
            found = keys[i]
            if found == key:
                return i
            if found == _EMPTY:
                return self._claim(key)
            i = (i + 1) & mask

    def national(self, values: Iterable[str], position: int, n: int) -> None:
        """Note that the national resolver with index ``n`` gave each of ``values`` for the
        name at ``position``."""
        bit = 2 << min(n, 6)
        for value in values:
            key = (hash(value) & _MASK) | 1
            i = self._find(key)
            self._flags[i] |= bit
            first = self._first[i]
            if first == _NO_POSITION:
                self._first[i] = position
                continue
            shared = self._shared.get(key)
            if shared is None:
                if first != position:
                    self._shared[key] = (value, [first, position])
            elif shared[1][-1] != position:
                shared[1].append(position)

    def control(self, values: Iterable[str]) -> None:
        """Note that a control gave each of ``values``, for any name."""
        for value in values:
            i = self._find((hash(value) & _MASK) | 1)
            self._flags[i] |= _BY_CONTROL

    def by_control(self, value: str) -> bool:
        """Return whether a control gave ``value``."""
        i = self._slot((hash(value) & _MASK) | 1)
        return self._keys[i] != _EMPTY and bool(self._flags[i] & _BY_CONTROL)

    def shared(self) -> list[tuple[str, frozenset[int], tuple[int, ...]]]:
        """Return each value the nationals gave for more than one name and no control gave:
        (value, the indexes of the nationals that gave it, the positions of the names)."""
        found = []
        for key, (value, positions) in self._shared.items():
            flags = self._flags[self._slot(key)]
            if flags & _BY_CONTROL:
                continue
            nationals = frozenset(n for n in range(7) if flags & (2 << n))
            found.append((value, nationals, tuple(sorted(set(positions)))))
        return sorted(found)


@functools.cache
def _suffixes() -> object:
    from publicsuffixlist import PublicSuffixList  # loaded once, and only when needed

    return PublicSuffixList()


def registered_domain(domain: str) -> str:
    """Return the registered domain of an A-label name (``www.bbc.co.uk`` → ``bbc.co.uk``), by
    the Public Suffix List; a public suffix itself stands for itself."""
    found = _suffixes().privatesuffix(domain)  # type: ignore[attr-defined]
    return str(found) if found else domain


def candidates(
    sightings: Sightings, domains: Sequence[str]
) -> list[tuple[str, frozenset[int], tuple[int, ...]]]:
    """Return the values the nationals gave for names of at least MIN_DOMAINS different
    registered domains and no control gave (so far): (value, national indexes, positions)."""
    found = []
    for value, nationals, positions in sightings.shared():
        if len(positions) < MIN_DOMAINS:
            continue
        registered = {registered_domain(domains[p]) for p in positions}
        if len(registered) >= MIN_DOMAINS:
            found.append((value, nationals, positions))
    return found


def suspected(
    sightings: Sightings, domains: Sequence[str], nationals: Sequence[str]
) -> tuple[BlockPage, ...]:
    """Return the suspected block pages, by address; ``nationals`` names the national
    resolvers by index."""
    return tuple(
        BlockPage(
            value,
            tuple(nationals[n] for n in sorted(found) if n < len(nationals)),
            tuple(sorted(domains[p] for p in positions)),
        )
        for value, found, positions in candidates(sightings, domains)
    )
