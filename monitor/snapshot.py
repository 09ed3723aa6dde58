"""Snapshot files: one sorted YAML line per domain, rendered and parsed here, written atomically.

A line says only what changes when something happens (verdict, since, each resolver's status),
so a quiet day leaves the domain file untouched and `git log -p` shows exactly what changed.
"""

from __future__ import annotations

import ctypes
import datetime
import errno
import functools
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
import yaml.resolver

from monitor.errors import SnapshotError
from monitor.escape import escape_text
from monitor.files import file_error, write_atomically
from monitor.vocabulary import SLUG

DOMAINS_FILE = "domains.yaml"
SHARDS_DIR = "domains"
RESOLVERS_FILE = "resolvers.yaml"
RUN_FILE = "run.yaml"
FEED_FILE = "feed.atom"
# Above this many names the domain file is split so that a web diff can render each piece.
SHARD_ABOVE = 5000
# Above this many, 4,096 shards instead of 256, so each stays a few hundred KB at a million names.
WIDE_SHARDS_ABOVE = 250_000

RESERVED_KEYS = ("verdict", "since", "today", "ede", "answers")

_PLAIN = re.compile(r"[A-Za-z0-9_.-]+")
_yaml_resolver = yaml.resolver.Resolver()


@dataclass(frozen=True, slots=True)
class Entry:
    """One domain's line: its last conclusive verdict, since when, and today's statuses."""

    domain: str
    verdict: str
    since: str
    statuses: tuple[tuple[str, str], ...]  # (resolver, status), in config order
    today: str | None = None
    # (resolver, EDE codes), on a flagged line: what each resolver declared (RFC 8914)
    ede: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # (resolver, addresses), on a tampered line: which national resolver gave which address
    answers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # The name as people read it (its Unicode form, its label): a comment at the line's end,
    # for `git log -p`; not part of what the line says.
    note: str | None = field(default=None, compare=False)

    @property
    def current(self) -> str:
        """The verdict of the day the line was written (``today`` when it was not conclusive)."""
        return self.today or self.verdict


_SHARED: dict[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]] = {}


def shared_statuses(statuses: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Return an equal tuple shared by every entry with these statuses (a million lines have few
    distinct ones, so this saves hundreds of megabytes)."""
    if len(_SHARED) > 100_000:
        _SHARED.clear()
    return _SHARED.setdefault(statuses, statuses)


def snapshot_dir(repo_root: Path, vantage: str) -> Path:
    """Return ``snapshots/<vantage>`` under the repository; the path never comes from DNS data."""
    if not SLUG.fullmatch(vantage):
        raise SnapshotError(f"bad vantage name {vantage!r}: use [a-z0-9-]+")
    return repo_root / "snapshots" / vantage


_DOMAIN_PLAIN = re.compile(r"[a-z0-9_-][a-z0-9_.-]*\.[a-z0-9_-]*[a-z]")


def _key(domain: str) -> str:
    """Return a domain as a YAML key: plain when it has a dot and ends in a letter (no bool, null,
    number or date reads that way; ``1._`` is a float to YAML), else as :func:`_scalar` decides."""
    return domain if _DOMAIN_PLAIN.fullmatch(domain) else _scalar(domain)


@functools.lru_cache(maxsize=4096)
def _scalar(text: str) -> str:
    """Return ``text`` as a YAML plain scalar when it reads back as the same string, else quoted."""
    if _PLAIN.fullmatch(text) and (
        _yaml_resolver.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        == "tag:yaml.org,2002:str"
    ):
        return text
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar, all escaped


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def render_line(entry: Entry) -> str:
    """Return the YAML line for one entry (no newline). Every value is written so that it
    reads back as itself, whatever a hand-edited file put in it."""
    since = entry.since if _DATE.fullmatch(entry.since) else _scalar(entry.since)
    parts = [f"verdict: {_scalar(entry.verdict)}", f"since: {since}"]
    if entry.today:
        parts.append(f"today: {_scalar(entry.today)}")
    parts.extend(f"{_scalar(name)}: {_scalar(status)}" for name, status in entry.statuses)
    if entry.ede:
        said = ", ".join(
            f"{_scalar(name)}: [{', '.join(str(int(c)) for c in codes)}]"
            for name, codes in entry.ede
        )
        parts.append(f"ede: {{{said}}}")
    if entry.answers:
        gave = ", ".join(
            f"{_scalar(name)}: [{', '.join(_scalar(a) for a in addresses)}]"
            for name, addresses in entry.answers
        )
        parts.append(f"answers: {{{gave}}}")
    line = f"{_key(entry.domain)}: {{{', '.join(parts)}}}"
    if entry.note:
        line += f"  # {escape_text(entry.note)}"
    return line


def shard_name(domain: str, total: int) -> str:
    """Return the file, relative to the vantage directory, that holds ``domain``'s line."""
    if total <= SHARD_ABOVE:
        return DOMAINS_FILE
    width = 3 if total > WIDE_SHARDS_ABOVE else 2
    digest = hashlib.blake2b(domain.encode(), digest_size=4).hexdigest()
    return f"{SHARDS_DIR}/{digest[:width]}.yaml"


def render_domains(entries: Iterable[Entry]) -> dict[str, str]:
    """Return the domain files' text keyed by relative path, lines sorted by domain."""
    ordered = sorted(entries, key=lambda e: e.domain)
    files: dict[str, list[str]] = {}
    for entry in ordered:
        files.setdefault(shard_name(entry.domain, len(ordered)), []).append(render_line(entry))
    return {path: "\n".join(lines) + "\n" for path, lines in files.items()}


def _text(value: Any) -> str:
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


_LINE = re.compile(r"([A-Za-z0-9_.-]+): \{([A-Za-z0-9_., :-]*)\}(?:  # (.*))?")


def _fast_entry(line: str) -> Entry | None:
    """Parse a line written by :func:`render_line` without YAML; None when it needs YAML.

    Only what :func:`render_line` writes unquoted is read here, so the fast path and YAML never
    disagree: a hand-edited ``null``, ``yes``, ``010``, a stray space or an empty value (which
    YAML reads as None, True, 8 or "ok") goes to YAML.
    """
    match = _LINE.fullmatch(line)
    if match is None:
        return None
    domain = match.group(1)
    if _key(domain) != domain:
        return None
    # A million lines have few distinct right-hand sides: each is checked and split once.
    body = match.group(2)
    fields = _BODIES.get(body, _UNSEEN)
    if fields is _UNSEEN:
        if len(_BODIES) > 100_000:
            _BODIES.clear()
        fields = _BODIES[body] = _fields(body)
    if fields is None:
        return None
    verdict, since, statuses, today = fields
    return Entry(domain, verdict, since, statuses, today, note=match.group(3))


_Fields = tuple[str, str, tuple[tuple[str, str], ...], str | None]
_UNSEEN: _Fields = ("", "", (), None)
_BODIES: dict[str, _Fields | None] = {}


def _fields(body: str) -> _Fields | None:
    """Return (verdict, since, statuses, today) of a line's ``{...}``, or None when a key or
    value is not one that render_line writes unquoted."""
    fields: dict[str, str] = {}
    for part in body.split(", "):
        key, sep, value = part.partition(": ")
        if not sep or key in fields or _scalar(key) != key:
            return None
        if not (key == "since" and _is_date(value)) and _scalar(value) != value:
            return None
        fields[key] = value
    verdict, since = fields.pop("verdict", None), fields.pop("since", None)
    if verdict is None or since is None:
        return None
    today = fields.pop("today", None)
    return verdict, since, shared_statuses(tuple(fields.items())), today


@functools.lru_cache(maxsize=4096)
def _is_date(text: str) -> bool:
    """Whether YAML reads ``text`` as a date: YYYY-MM-DD and a real day."""
    if not _DATE.fullmatch(text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def parse_line(line: str) -> Entry | None:
    """Return the entry one domain line holds, or None when the line holds none."""
    entry = _fast_entry(line)
    if entry is not None:
        return entry
    try:
        entries = _parse_yaml(line, "line")
    except SnapshotError:
        return None
    return next(iter(entries.values()), None) if len(entries) == 1 else None


def parse_domains(text: str, source: str = DOMAINS_FILE) -> dict[str, Entry]:
    """Return the entries of one domain file, keyed by domain. Raises SnapshotError.

    Lines as this module writes them are read directly (fast at a million names); anything else
    goes through the safe YAML loader, so a hand-edited file still reads as YAML says.
    """
    entries: dict[str, Entry] = {}
    for line in text.splitlines():
        entry = _fast_entry(line)
        if entry is None or entry.domain in entries:
            return _parse_yaml(text, source)
        entries[entry.domain] = entry
    return entries


def _parse_yaml(text: str, source: str) -> dict[str, Entry]:
    try:
        data = yaml.load(text, Loader=_SafeLoader) if text.strip() else {}
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a date such as 2026-13-45
        raise SnapshotError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SnapshotError(f"{source}: expected a mapping of domains")
    entries = {}
    for domain, fields in data.items():
        if not isinstance(fields, dict) or "verdict" not in fields or "since" not in fields:
            raise SnapshotError(f"{source}: {domain}: expected verdict and since")
        statuses = tuple((str(k), _text(v)) for k, v in fields.items() if k not in RESERVED_KEYS)
        today = fields.get("today")
        entries[str(domain)] = Entry(
            str(domain),
            _text(fields["verdict"]),
            _text(fields["since"]),
            statuses,
            None if today is None else _text(today),
            _ede(fields.get("ede")),
            _answers(fields.get("answers")),
        )
    return entries


def _answers(value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Return a tampered line's ``answers`` as written; what a hand edit made of it otherwise
    is left out."""
    if not isinstance(value, dict):
        return ()
    return tuple(
        (str(name), tuple(addresses))
        for name, addresses in value.items()
        if isinstance(addresses, list) and all(isinstance(a, str) for a in addresses)
    )


def _ede(value: Any) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Return a line's ``ede`` as written; what a hand edit made of it otherwise is left out
    (it only informs, and must not cost a run)."""
    if not isinstance(value, dict):
        return ()
    found = []
    for name, codes in value.items():
        if isinstance(codes, list) and all(type(c) is int and 0 <= c < 65536 for c in codes):
            found.append((str(name), tuple(codes)))
    return tuple(found)


def parse_snapshot(files: Mapping[str, bytes]) -> dict[str, Entry]:
    """Return every entry of a vantage's snapshot, given its files keyed by relative path."""
    entries: dict[str, Entry] = {}
    for path, data in files.items():
        if path == DOMAINS_FILE or (path.startswith(SHARDS_DIR + "/") and path.endswith(".yaml")):
            entries.update(parse_domains(data.decode("utf-8"), path))
    return entries


def read_snapshot(directory: Path) -> dict[str, Entry]:
    """Return the entries of the snapshot in a work-tree directory (empty when there is none)."""
    files = {}
    for path in [directory / DOMAINS_FILE, *sorted((directory / SHARDS_DIR).glob("*.yaml"))]:
        if path.is_file():
            files[path.relative_to(directory).as_posix()] = path.read_bytes()
    return parse_snapshot(files)


def render_resolvers(health: Sequence[tuple[str, str, str] | tuple[str, str, str, str]]) -> str:
    """Return resolvers.yaml: each resolver's group and health, as (name, group, health) or
    (name, group, health, tcp): ``tcp`` says why a udp resolver was not asked over TCP."""
    lines = []
    for name, group, state, *tcp in health:
        extra = f", tcp: {_scalar(tcp[0])}" if tcp and tcp[0] else ""
        lines.append(f"{_scalar(name)}: {{group: {group}, health: {state}{extra}}}\n")
    return "".join(lines)


def render_run(fields: Mapping[str, Any]) -> str:
    """Return run.yaml from an ordered mapping of plain values and flat mappings."""
    return yaml.safe_dump(dict(fields), sort_keys=False, allow_unicode=True, width=1000)


def write_files(directory: Path, files: Mapping[str, str], *, prune: Iterable[str] = ()) -> None:
    """Write ``files`` (relative path -> text) under ``directory``, each atomically (UTF-8).

    A reader (or a crash) sees each file old or new, never half of one. Paths in ``prune`` that
    are not in ``files`` are removed afterwards. Raises OSError.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        write_atomically(directory / relative, text.encode("utf-8"))
    for relative in prune:
        if relative not in files:
            (directory / relative).unlink(missing_ok=True)
    shards = directory / SHARDS_DIR
    if shards.is_dir() and not any(shards.iterdir()):
        shards.rmdir()


def replace_directory(directory: Path, files: Mapping[str, str]) -> None:
    """Make ``directory`` hold exactly ``files`` (relative path -> text), as one whole set.

    The files are written and flushed into a staging directory beside it, which is then
    exchanged with the old one in a single atomic step (Linux renameat2 RENAME_EXCHANGE), so a
    crash at any moment leaves the old set or the new one, never a mix. Where the exchange is
    not available, two renames are used and :func:`recover` repairs the gap at the next run.

    Raises FileError (the old set untouched, the staging directory removed) when a file or
    directory cannot be written.
    """
    staging = _staging(directory)
    try:
        recover(directory)
        if directory.exists() and not directory.is_dir():  # the exchange would swap it in
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(directory))
        write_files(staging, files)
        _fsync_dir(staging)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise file_error(exc, directory, {staging: directory}) from exc
    try:
        if not directory.exists():
            os.rename(staging, directory)
        elif not _exchange(staging, directory):
            old = _retired(directory)
            os.rename(directory, old)
            os.rename(staging, directory)
            shutil.rmtree(old)
        else:
            shutil.rmtree(staging)
        _fsync_dir(directory.parent)
    except OSError as exc:
        raise file_error(exc, directory, {staging: directory}) from exc


def recover(directory: Path) -> None:
    """Undo what a crash in :func:`replace_directory` left beside ``directory``."""
    old = _retired(directory)
    if old.exists():
        if directory.exists():
            shutil.rmtree(old)
        else:
            os.rename(old, directory)
    shutil.rmtree(_staging(directory), ignore_errors=True)


def _staging(directory: Path) -> Path:
    return directory.parent / f".{directory.name}.new"


def _retired(directory: Path) -> Path:
    return directory.parent / f".{directory.name}.old"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically; False when this system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), ctypes.c_uint(_RENAME_EXCHANGE)
    )
    if result == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), str(b))


def domain_files(directory: Path) -> list[str]:
    """Return the relative paths of the domain files now under ``directory``."""
    found = [DOMAINS_FILE] if (directory / DOMAINS_FILE).is_file() else []
    found += [f"{SHARDS_DIR}/{p.name}" for p in sorted((directory / SHARDS_DIR).glob("*.yaml"))]
    return found


class _SafeLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The libyaml-backed safe loader where available; never the full (unsafe) loader."""
