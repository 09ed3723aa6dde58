"""Suspected block pages: addresses and CNAME targets the nationals give for many names, and no
control gives, found in one pass over every answer at a million names.

A block page (a walled garden) is one address, or one host reached by CNAME, that a censoring
resolver gives for the names it blocks. A name whose national answer is routable and unlabelled
is `present`; only across names does the page show: the nationals give it for at least
MIN_DOMAINS names of different registered domains, while no control gives it for any name. It
is reported, so that a person can list it in ``stub_addresses`` or ``stub_names``; it raises no
flag by itself, since CDN edges differ from country to country.

Every answer passes through :class:`Sightings`, so the nationals' values go to a compact
open-addressing table of 64-bit hashes (13 bytes a slot) rather than a dict of strings: the
first name that gave a value is kept as a number, and only values seen for a second name are
kept as text, with their names. A control's value only clears one, so it is kept as its hash
(8 bytes an answer) and looked for among the few shared values when they are asked for.
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MIN_DOMAINS = 3  # different registered domains for which the nationals give one value
_EMPTY = 0
_MASK = (1 << 64) - 1
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
    lists the values the nationals gave for more than one name and no control gave, with those
    names. A control's value only clears, so it is kept as its hash, in arrival order, and
    compared with the few shared values when they are asked for: the table holds the
    nationals' values alone, and a control's answer costs an append.
    """

    def __init__(self, expected: int = 0) -> None:
        """``expected``: about how many values will be noted (the names times the types), so
        that the table is made at its size once rather than grown and copied."""
        size = _FIRST_SIZE
        while size < 2 * expected:
            size *= 2
        self._allocate(size)
        self._used = 0
        # value hash -> (value, positions), once a second name gave it
        self._shared: dict[int, tuple[str, list[int]]] = {}
        self._controls = array("Q")  # the hash of every value a control gave

    def _slot(self, key: int) -> int:
        keys = self._keys
        mask = len(keys) - 1
        i = key & mask
        while True:
            found = keys[i]
            if found in (key, _EMPTY):
                return i
            i = (i + 1) & mask

    def _allocate(self, size: int) -> None:
        """Make the empty table of ``size`` slots (a power of two)."""
        self._keys = array("Q", bytes(8 * size))
        self._first = array("I", bytes(4 * size))  # the first name that gave it
        self._flags = bytearray(size)  # a bit per national resolver

    def _grow(self) -> None:
        keys, first, flags = self._keys, self._first, self._flags
        self._allocate(2 * len(keys))
        for old, key in enumerate(keys):
            if key != _EMPTY:
                i = self._slot(key)
                self._keys[i] = key
                self._first[i] = first[old]
                self._flags[i] = flags[old]

    def national(self, values: Iterable[str], position: int, n: int) -> None:
        """Note that the national resolver with index ``n`` gave each of ``values`` for the
        name at ``position``."""
        bit = 1 << n if n < 8 else 0x80
        for value in values:
            key = (hash(value) & _MASK) | 1
            # The probe of _slot, inlined: every national answer comes here, and the first
            # answer with each value takes a slot.
            keys = self._keys
            mask = len(keys) - 1
            i = key & mask
            while True:
                found = keys[i]
                if found == key:
                    break
                if found == _EMPTY:
                    if 2 * (self._used + 1) > len(keys):
                        self._grow()
                        i = self._slot(key)
                    self._keys[i] = key
                    self._used += 1
                    self._first[i] = position
                    self._flags[i] = bit
                    break
                i = (i + 1) & mask
            if found != key:
                continue  # a new value: its first name noted
            self._flags[i] |= bit
            first = self._first[i]
            if first == position:
                continue  # the other national's answer for the same name, most often
            shared = self._shared.get(key)
            if shared is None:
                self._shared[key] = (value, [first, position])
            elif shared[1][-1] != position:
                shared[1].append(position)

    def control(self, values: Iterable[str]) -> None:
        """Note that a control gave each of ``values``, for any name."""
        append = self._controls.append
        for value in values:
            append((hash(value) & _MASK) | 1)

    def by_control(self, value: str) -> bool:
        """Return whether a control gave ``value``."""
        return ((hash(value) & _MASK) | 1) in self._controls

    def shared(self) -> list[tuple[str, frozenset[int], tuple[int, ...]]]:
        """Return each value the nationals gave for more than one name and no control gave:
        (value, the indexes of the nationals that gave it, the positions of the names)."""
        cleared = set(self._shared).intersection(self._controls)  # in C, no set of them all
        found = []
        for key, (value, positions) in self._shared.items():
            if key in cleared:
                continue
            flags = self._flags[self._slot(key)]
            nationals = frozenset(n for n in range(8) if flags & (1 << n))
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
