"""Shared fixtures: a lab of real NSD and unbound servers for the end-to-end tests."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from realdns import DNSLab, fail_unless_installed


@pytest.fixture
def dnslab(tmp_path: Path) -> Iterator[DNSLab]:
    """Yield an empty DNSLab in tmp_path; every server started in it is stopped at teardown.

    Fails (never skips) when nsd or unbound is missing, saying how to install them.
    """
    fail_unless_installed()
    with DNSLab(tmp_path / "lab") as lab:
        yield lab
