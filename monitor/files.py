"""Files replaced whole or not at all: written beside the target, flushed, renamed over it."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from monitor.errors import FileError


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
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write() names no file: name the one replaced
        raise


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` as :func:`replacing` does. Raises OSError."""
    with replacing(path) as temp:
        temp.write_bytes(data)


_REFUSED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def file_error(exc: OSError, target: Path, shown: Mapping[Path, Path] | None = None) -> FileError:
    """Return the FileError for ``exc``, raised while writing ``target``.

    It names the path a person can act on: for "Not a directory" the file that stands where a
    directory should be; for a refusal (permission, read-only) the nearest directory that
    exists; else the path the system named. ``shown`` maps private paths (a staging directory)
    to the ones people know.
    """
    named = exc.filename if isinstance(exc.filename, str | os.PathLike) else None
    path = Path(os.fsdecode(named)) if named is not None else target
    for hidden, known in (shown or {}).items():
        if path == hidden or hidden in path.parents:
            path = known / path.relative_to(hidden)
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EEXIST and path.exists() and not path.is_dir():
        # mkdir of a directory that a file stands in for
        reason = os.strerror(errno.ENOTDIR)
    elif exc.errno == errno.ENOTDIR:
        path = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
    elif exc.errno in _REFUSED and not path.exists():
        path = next((p for p in path.parents if p.is_dir()), path)
    return FileError(str(path), reason)
