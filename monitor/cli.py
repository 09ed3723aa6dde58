"""The command line: parse, call one core function, render its result."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TextIO, TypeVar

import click

from monitor import __version__, gitstore
from monitor.config import Config, WatchedName, load_config
from monitor.demo import demo, refuse_unsafe
from monitor.errors import MonitorError, UsageError
from monitor.escape import escape_json
from monitor.export import export_sqlite
from monitor.files import file_error
from monitor.history import diff as diff_revisions
from monitor.history import history
from monitor.measure import Progress, measure
from monitor.names import to_alabel, to_display
from monitor.output import (
    check_table,
    diff_document,
    diff_lines,
    health_lines,
    history_csv,
    history_document,
    history_table,
    measurement_document,
    run_summary,
    skipped_lines,
)
from monitor.report import build_site
from monitor.run import RunResult, parse_date, run, today

P = ParamSpec("P")
R = TypeVar("R")

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_FLAGS = 3
EXIT_INCONCLUSIVE = 4


def _fail(error: MonitorError) -> NoReturn:
    click.echo(f"Error: {error}", err=True)
    sys.exit(error.exit_code)


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the package's own errors into ``Error: ...`` and their exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except MonitorError as error:
            _fail(error)

    return wrapper


def _progress_on_terminal() -> Callable[[Progress], None] | None:
    """A progress line on stderr when it is a terminal; nothing in logs and pipes."""
    if not sys.stderr.isatty():
        return None

    def show(p: Progress) -> None:
        left = (
            f", {int(p.remaining) // 60}m{int(p.remaining) % 60:02d}s left" if p.remaining else ""
        )
        line = f"{p.done:,}/{p.total:,} queries, {p.rate:,.0f}/s{left}"
        end = "\n" if p.done >= p.total else ""
        click.echo(f"\r{line}\033[K{end}", err=True, nl=False)

    return show


def _echo_json(doc: Any) -> None:
    # Unicode stays readable (кремль.рф); what could steer a terminal is escaped.
    click.echo(escape_json(json.dumps(doc, ensure_ascii=False, indent=1)))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("config.yaml"),
    envvar="REGISTRY_MONITOR_CONFIG",
    show_default=True,
    help="The configuration file (env REGISTRY_MONITOR_CONFIG); also accepted after the command.",
)
@click.version_option(__version__, prog_name="registry-monitor")
@click.pass_context
def cli(ctx: click.Context, config_path: Path) -> None:
    """Watch a national DNS system and record in git every domain that vanishes from it."""
    source = ctx.get_parameter_source("config_path")
    ctx.obj = (config_path, source is not click.core.ParameterSource.DEFAULT)


def _config_after_command(ctx: click.Context, _: click.Parameter, path: Path | None) -> None:
    """Take ``--config`` given after the command as if it came before it.

    It wins over the environment (a default, as ./config.yaml is); given both before and
    after the command, it must name the same file, or the command is refused up front.
    """
    if path is None:
        return
    before, _explicit = ctx.obj
    parent = ctx.parent
    typed_before = (
        parent is not None
        and parent.get_parameter_source("config_path") is click.core.ParameterSource.COMMANDLINE
    )
    if typed_before and before.resolve() != path.resolve():
        raise click.UsageError(
            f"--config is given twice, {before} before the command and {path} after it: give one",
            ctx,
        )
    ctx.obj = (path, True)


def _reads_config(command: Callable[P, R]) -> Callable[P, R]:
    """Accept ``--config`` after the command too, for a command that reads the config."""
    return click.option(
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        expose_value=False,
        callback=_config_after_command,
        help="The configuration file, as before the command (env REGISTRY_MONITOR_CONFIG).",
    )(command)


def _config(ctx: click.Context) -> Config:
    path, _ = ctx.obj
    return load_config(path)


@cli.command()
@_reads_config
@click.pass_context
@reports_errors
def validate(ctx: click.Context) -> None:
    """Check the configuration and exit (0 when it is valid, 2 with the reason when not).

    Also says which lines of the watchlist files added no name: IP addresses (skipped) and
    names listed before (merged), with a count and the first few of each.
    """
    config = _config(ctx)
    nationals = len(config.national)
    controls = len(config.control)
    click.echo(
        f"{config.path}: valid: vantage {config.vantage}, {nationals} national and "
        f"{controls} control resolvers, {len(config.watchlist)} names"
    )
    for line in skipped_lines(config.skipped):
        click.echo(line)


def _names_for_text(domains: tuple[str, ...]) -> list[WatchedName]:
    names = []
    for text in domains:
        try:
            alabel = to_alabel(text)
        except ValueError as exc:
            raise UsageError(f"{text!r} is not a domain name: {exc}") from None
        names.append(WatchedName(alabel, to_display(alabel), None))
    return names


def _names_for(config: Config, domains: tuple[str, ...]) -> list[WatchedName]:
    if not domains:
        return list(config.watchlist)
    known = {n.domain: n for n in config.watchlist}
    return [known.get(n.domain, n) for n in _names_for_text(domains)]


@cli.command()
@_reads_config
@click.argument("domains", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document instead of a table.")
@click.pass_context
@reports_errors
def check(ctx: click.Context, domains: tuple[str, ...], as_json: bool) -> None:
    """Resolve DOMAINs (default: the watchlist) now and print each verdict; writes nothing.

    Exits 4 when the run is inconclusive (every national resolver down, or too few controls).
    """
    config = _config(ctx)
    names = _names_for(config, domains)
    measurement = measure(config, names, progress=_progress_on_terminal())
    if as_json:
        _echo_json(measurement_document(measurement, today()))
    else:
        for line in health_lines(measurement):
            click.echo(line, err=True)
        if measurement.domains:
            click.echo(check_table(measurement, [r.name for r in config.resolvers]))
    if measurement.inconclusive:
        click.echo(f"Inconclusive: {measurement.inconclusive}", err=True)
        sys.exit(EXIT_INCONCLUSIVE)


def _vantage(ctx: click.Context, root: Path) -> str:
    """The vantage to read: the config's, or the only one under snapshots/ without a config."""
    path, explicit = ctx.obj
    if explicit or path.exists():
        return load_config(path).vantage
    found = sorted(p.name for p in (root / "snapshots").glob("*") if p.is_dir())
    if len(found) != 1:
        raise UsageError(
            f"{path}: no such file, and snapshots/ holds {len(found)} vantage points: "
            "use --config to say which one"
        )
    return found[0]


_repo_option = click.option(
    "--repo",
    "repo_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The git repository holding snapshots/ (default: the one containing this directory).",
)


@cli.command("run")
@_reads_config
@_repo_option
@click.option("--date", "date", default=None, help="Date the run (YYYY-MM-DD; default today, UTC).")
@click.option("--no-commit", is_flag=True, help="Write the snapshot files but do not commit.")
@click.option(
    "--push", is_flag=True, help="Push the commit; rebase and retry when the remote moved."
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document of the run.")
@click.option(
    "--exit-code", is_flag=True, help="Exit 3 when the run raised disappeared or degraded events."
)
@click.option(
    "--summary",
    "summary_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="GITHUB_STEP_SUMMARY",
    help="Append a Markdown summary of the run to this file (env GITHUB_STEP_SUMMARY).",
)
@click.pass_context
@reports_errors
def run_command(
    ctx: click.Context,
    repo_dir: Path | None,
    date: str | None,
    no_commit: bool,
    push: bool,
    as_json: bool,
    exit_code: bool,
    summary_path: Path | None,
) -> None:
    """Resolve the watchlist, write snapshots/<vantage>/, compare with the last run, commit.

    Exits 4 without writing anything when the run is inconclusive; with --exit-code, exits 3
    when new disappeared or degraded events were raised.
    """
    config = _config(ctx)
    with contextlib.ExitStack() as stack:
        # Opened before any query: a summary that cannot be written must not cost a run.
        summary = None if summary_path is None else stack.enter_context(_appending(summary_path))
        result = run(
            config,
            repo=repo_dir,
            date=date,
            commit=not no_commit,
            push=push,
            detail=as_json,
            progress=_progress_on_terminal(),
        )
        if summary is not None:
            summary.write(run_summary(result))
    if as_json:
        events = [e.document() for e in result.events]
        _echo_json(measurement_document(result.measurement, result.date, events))
    else:
        for line in health_lines(result.measurement):
            click.echo(line, err=True)
        click.echo(result.message.rstrip("\n"))
        if result.commit:
            click.echo(
                f"\ncommitted {result.commit[:12]}" + (" and pushed" if result.pushed else "")
            )
    if exit_code and result.alerting:
        sys.exit(EXIT_FLAGS)


@cli.command()
@_reads_config
@click.argument("rev_a", required=False, default=None)
@click.argument("rev_b", required=False, default=None)
@_repo_option
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON.")
@click.pass_context
@reports_errors
def diff(
    ctx: click.Context, rev_a: str | None, rev_b: str | None, repo_dir: Path | None, as_json: bool
) -> None:
    """Show the events of every run after REV_A up to REV_B, each dated by its own run
    (default HEAD~1 and HEAD)."""
    repo = gitstore.open_repo(repo_dir)
    vantage = _vantage(ctx, Path(repo.working_tree_dir or "."))
    rev_a = rev_a or "HEAD~1"
    rev_b = rev_b or "HEAD"
    result = diff_revisions(repo, vantage, rev_a, rev_b)
    labels = _labels(ctx)
    if as_json:
        _echo_json(diff_document(result, labels))
        return
    for line in diff_lines(result, (rev_a, rev_b), labels):
        click.echo(line)


@cli.command("history")
@_reads_config
@click.argument("domains", nargs=-1)
@_repo_option
@click.option("--since", default=None, help="Leave out periods that ended before this date.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.pass_context
@reports_errors
def history_command(
    ctx: click.Context,
    domains: tuple[str, ...],
    repo_dir: Path | None,
    since: str | None,
    fmt: str,
) -> None:
    """Show each domain's verdict periods, oldest first, from the git history of snapshots/.

    A period still current ends on the latest run's date, marked (last run).
    """
    if since is not None:
        since = parse_date(since, "--since")
    wanted = [n.domain for n in _names_for_text(domains)]
    repo = gitstore.open_repo(repo_dir)
    vantage = _vantage(ctx, Path(repo.working_tree_dir or "."))
    histories = history(repo, vantage, wanted, since)
    labels = _labels(ctx)
    if fmt == "json":
        _echo_json(history_document(histories, labels))
    elif fmt == "csv":
        click.echo(history_csv(histories, labels), nl=False)
    elif histories:
        click.echo(history_table(histories, labels))
    else:
        click.echo(f"{vantage}: no history" + (f" for {', '.join(domains)}" if domains else ""))


@cli.command("demo")
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Keep the demo repository in DIR, a new or empty directory, instead of a temporary one.",
)
@reports_errors
def demo_command(keep: Path | None) -> None:
    """Replay the Na Svyazi finding offline: embedded resolvers, three simulated days, a git repo.

    Needs no network and no root; takes a few seconds and leaves nothing running.
    """
    refuse_unsafe(keep)
    click.echo("Starting 2 national and 3 control resolvers on 127.0.0.1 (embedded, offline)...")

    def show_day(result: RunResult) -> None:
        click.echo(f"\n=== run --date {result.date}: commit message ===")
        click.echo(result.message.rstrip("\n"))

    result = demo(keep, show_day)
    click.echo(f"\n=== diff: the events of {result.diff_day} ===")
    for e in result.diff:
        click.echo(f"{e.date} {e.line}")
    click.echo("\n=== history " + " ".join(h.domain for h in result.histories) + " ===")
    click.echo(history_table(result.histories))
    if result.kept:
        click.echo(
            f"\nThe repository is in {result.repo}: try `git -C {result.repo} log -p snapshots/`"
            "\n`diff`, `history`, `report` and `export` work there; `run` and `check` cannot:"
            " the demo's resolvers are gone."
        )
    else:
        click.echo(
            "\nDone. Run `registry-monitor demo --keep DIR` to keep the repository and read it."
        )


_vantages_option = click.option(
    "--vantage",
    "vantages",
    multiple=True,
    metavar="NAME",
    help="Only this vantage point (repeatable; default: every one under snapshots/).",
)


def _labels(ctx: click.Context) -> dict[str, str]:
    """The watchlist's labels by domain, when there is a config file to read them from."""
    path, explicit = ctx.obj
    watchlist = load_config(path).watchlist if explicit or path.exists() else ()
    return {n.domain: n.label for n in watchlist if n.label}


@cli.command()
@_reads_config
@_repo_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the site here (default: site/ in the repository).",
)
@click.option(
    "--link",
    default=None,
    metavar="URL",
    help="The repository's web page, for commit links, e.g. https://github.com/OWNER/REPO "
    "(default: from the origin remote when it is on GitHub).",
)
@_vantages_option
@click.pass_context
@reports_errors
def report(
    ctx: click.Context,
    repo_dir: Path | None,
    out_dir: Path | None,
    link: str | None,
    vantages: tuple[str, ...],
) -> None:
    """Build a static HTML report (index.html) from the git history of snapshots/.

    Charts of the verdicts per run, the names not present now, a timeline per name and the
    events of each day, for every vantage point; it loads nothing from the network.
    """
    repo = gitstore.open_repo(repo_dir)
    root = Path(repo.working_tree_dir or ".")
    site = build_site(
        repo, out_dir or root / "site", vantages=vantages, link=link, labels=_labels(ctx)
    )
    click.echo(
        f"wrote {site.index}: {', '.join(site.vantages)}, {site.runs} runs, {site.events} events"
    )


@cli.command()
@_reads_config
@click.option(
    "--sqlite",
    "sqlite_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The SQLite file to write (replaced atomically).",
)
@_repo_option
@_vantages_option
@click.pass_context
@reports_errors
def export(
    ctx: click.Context, sqlite_path: Path, repo_dir: Path | None, vantages: tuple[str, ...]
) -> None:
    """Export runs, names, verdict periods, events, each resolver's statuses and health from the
    git history to SQLite, with keys and the views missing_now and disappearances."""
    repo = gitstore.open_repo(repo_dir)
    done = export_sqlite(repo, sqlite_path, vantages=vantages, labels=_labels(ctx))
    click.echo(
        f"wrote {done.path}: {', '.join(done.vantages)}, {done.runs} runs, {done.domains} "
        f"names, {done.periods} periods, {done.events} events"
    )


def _appending(path: Path) -> TextIO:
    """Return ``path`` opened to append text. Raises FileError."""
    try:
        return path.open("a", encoding="utf-8")
    except OSError as exc:
        raise file_error(exc, path) from exc


def _end_on_closed_pipe() -> NoReturn:
    """End at once and silently, because the reader of stdout went away (``| head -1``): as
    other command-line tools do, by SIGPIPE (status 141 in a shell)."""
    with contextlib.suppress(OSError):
        # Nothing may be written after this, not even at interpreter shutdown.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    sys.exit(128 + signal.SIGPIPE)  # where the signal does not end the process


def _prog_name() -> str:
    """The name the command was run by, as usage lines show it."""
    if Path(sys.argv[0]).name == "__main__.py":
        return "python -m monitor"
    return Path(sys.argv[0]).name or "registry-monitor"


def main() -> None:
    """Run the command line; any error that is not the package's own exits 1.

    The command runs without click's ``main``, whose handler would turn a closed stdout into
    exit 1: a reader that went away ends the command as it ends other tools.
    """
    try:
        try:
            with cli.make_context(_prog_name(), sys.argv[1:]) as ctx:
                code = cli.invoke(ctx)
        except click.exceptions.Exit as done:  # --help, --version
            code = done.exit_code
    except BrokenPipeError:
        _end_on_closed_pipe()
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(EXIT_INTERNAL)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except SystemExit:
        raise
    except Exception as exc:  # the last line of defence: say it, exit 1
        click.echo(f"Internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(EXIT_INTERNAL)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _end_on_closed_pipe()
    sys.exit(code if isinstance(code, int) else EXIT_OK)
