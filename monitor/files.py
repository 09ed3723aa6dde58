"""Files replaced whole or not at all: written beside the target, flushed, renamed over it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for the body to write; when the body ends without
    raising, flush that file to disk and rename it over ``path`` (mode 0o644), so a reader or a
    crash sees the old file or the new one, never half of one. The temporary file is removed
    otherwise. Raises OSError (and what the body raises).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(temp, 0o644)  # mkstemp's 0o600 would hide a page from a web server
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` as :func:`replacing` does. Raises OSError."""
    with replacing(path) as temp:
        temp.write_bytes(data)
