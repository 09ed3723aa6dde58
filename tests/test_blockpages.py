"""Suspected block pages: the compact table of every value answered, and the rule over it."""

from __future__ import annotations

import random

import pytest

from monitor.blockpages import (
    MIN_DOMAINS,
    BlockPage,
    Sightings,
    candidates,
    registered_domain,
    suspected,
)


@pytest.mark.parametrize(
    ("domain", "registered"),
    [
        ("www.bbc.co.uk", "bbc.co.uk"),
        ("bbc.co.uk", "bbc.co.uk"),
        ("bbc.com", "bbc.com"),
        ("web.whatsapp.com", "whatsapp.com"),
        ("a.b.github.io", "b.github.io"),  # a private suffix of the list: its own registrant
        ("xn--e1ajeds9e.xn--p1ai", "xn--e1ajeds9e.xn--p1ai"),  # кремль.рф
        ("co.uk", "co.uk"),  # a public suffix stands for itself
        ("name7.example", "name7.example"),
    ],
)
def test_registered_domains_come_from_the_public_suffix_list(domain: str, registered: str) -> None:
    assert registered_domain(domain) == registered


DOMAINS = [
    "youtube.com",  # 0
    "www.youtube.com",  # 1
    "bbc.com",  # 2
    "bbc.co.uk",  # 3
    "dw.com",  # 4
    "web.whatsapp.com",  # 5
    "whatsapp.com",  # 6
]


def test_a_value_the_nationals_give_for_names_of_three_registered_domains_is_suspected() -> None:
    seen = Sightings()
    for position in (0, 2, 3):  # youtube.com, bbc.com, bbc.co.uk: three registrants
        seen.national(["10.0.34.34"], position, 0)
        seen.national(["10.0.34.34"], position, 1)
    seen.national(["198.51.100.7"], 4, 0)  # a name's own address
    assert suspected(seen, DOMAINS, ["nsdi-a", "nsdi-b"]) == (
        BlockPage("10.0.34.34", ("nsdi-a", "nsdi-b"), ("bbc.co.uk", "bbc.com", "youtube.com")),
    )


def test_names_of_one_registered_domain_count_once() -> None:
    seen = Sightings()
    for position in (0, 1, 5, 6):  # youtube.com twice, whatsapp.com twice: two registrants
        seen.national(["192.0.2.80"], position, 0)
    assert [v for v, _, _ in seen.shared()] == ["192.0.2.80"]  # shared by names...
    assert candidates(seen, DOMAINS) == []  # ...of fewer than MIN_DOMAINS registrants
    assert MIN_DOMAINS == 3


def test_a_value_a_control_gives_for_any_name_is_not_a_page() -> None:
    seen = Sightings()
    for position in (0, 2, 3, 4):
        seen.national(["192.0.2.80"], position, 0)
    seen.control(["192.0.2.80"])  # for another name, or one of these: a shared host
    assert seen.by_control("192.0.2.80") and not seen.by_control("192.0.2.81")
    assert suspected(seen, DOMAINS, ["nsdi-a"]) == ()


def test_the_control_may_answer_before_the_nationals() -> None:
    seen = Sightings()
    seen.control(["192.0.2.80"])
    for position in (0, 2, 3):
        seen.national(["192.0.2.80"], position, 0)
    assert suspected(seen, DOMAINS, ["nsdi-a"]) == ()


def test_a_cname_target_is_a_value_like_an_address() -> None:
    seen = Sightings()
    for position in (0, 2, 4):
        seen.national(["warning.isp.example", "192.0.2.80"], position, 1)
    pages = suspected(seen, DOMAINS, ["nsdi-a", "nsdi-b"])
    assert [p.address for p in pages] == ["192.0.2.80", "warning.isp.example"]
    assert all(p.resolvers == ("nsdi-b",) for p in pages)


def test_one_name_asked_twice_is_not_shared() -> None:
    seen = Sightings()
    for n in range(3):  # three nationals, and A and AAAA, all about one name
        seen.national(["192.0.2.80"], 4, n)
        seen.national(["192.0.2.80"], 4, n)
    assert seen.shared() == []


def test_the_table_grows_and_keeps_every_value() -> None:
    seen = Sightings()
    rng = random.Random(7)
    values = [f"198.{rng.randrange(256)}.{i >> 8 & 255}.{i & 255}" for i in range(20_000)]
    for position, value in enumerate(values):
        seen.national([value], position, 0)
    for position, value in enumerate(values[:500]):  # a second name for the first 500
        seen.national([value], position + 100_000, 0)
    shared = seen.shared()
    assert len(shared) == len(set(values[:500]))
    assert all(
        positions == (p, p + 100_000)
        for (_, _, positions), p in zip(shared, _firsts(values[:500], shared), strict=True)
    )
    # at least twice the values in slots: a few bytes each, never a dict of strings
    assert 2 * 20_000 <= len(seen._keys) <= 8 * 20_000
    assert seen._keys.itemsize == 8 and seen._first.itemsize == 4


def test_a_table_made_for_the_values_expected_never_grows() -> None:
    seen = Sightings(expected=20_000)
    size = len(seen._keys)
    assert 2 * 20_000 <= size <= 4 * 20_000
    for position in range(20_000):
        seen.national([f"198.51.{position >> 8 & 255}.{position & 255}"], position, 0)
    seen.national(["198.51.0.7"], 30_000, 1)  # a second name for one of them
    assert len(seen._keys) == size
    assert seen.shared() == [("198.51.0.7", frozenset({0, 1}), (7, 30_000))]
    assert len(Sightings()._keys) < size  # a few thousand slots when nothing is expected


def _firsts(
    values: list[str], shared: list[tuple[str, frozenset[int], tuple[int, ...]]]
) -> list[int]:
    index = {v: i for i, v in enumerate(values)}
    return [index[v] for v, _, _ in shared]


def test_a_page_document_is_designs() -> None:
    page = BlockPage("10.0.34.34", ("nsdi-a",), ("a.com", "b.org", "c.net"))
    assert page.document() == {
        "address": "10.0.34.34",
        "resolvers": ["nsdi-a"],
        "domains": ["a.com", "b.org", "c.net"],
    }
