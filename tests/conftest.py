"""Shared fixtures: a lab of real NSD and unbound servers for the end-to-end tests."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from realdns import DNSLab, MissingBinaryError, require_binaries


@pytest.fixture
def dnslab(tmp_path: Path) -> Iterator[DNSLab]:
    """Yield an empty DNSLab in tmp_path; every server started in it is stopped at teardown.

    Fails (never skips) when nsd or unbound is missing, saying how to install them.
    """
    missing = None
    try:
        require_binaries()
    except MissingBinaryError as error:
        missing = str(error)
    if missing is not None:
        pytest.fail(missing, pytrace=False)
    with DNSLab(tmp_path / "lab") as lab:
        yield lab
