"""The command line: validate, usage errors, exit codes, messages and --help (DNS only from
in-process responders on loopback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from monitor import __version__
from monitor.cli import cli
from monitor.lab import Lab, World

PROJECT = Path(__file__).resolve().parent.parent

VALID = """\
vantage: lab
resolvers:
  national:
    - {name: nsdi-a, address: 195.208.4.1}
  control:
    - {name: google, address: 8.8.8.8, transport: tcp}
watchlist: [youtube.com, кремль.рф]
"""


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No config from the environment, and a working directory without config.yaml."""
    monkeypatch.delenv("REGISTRY_MONITOR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        cli, list(args), prog_name="registry-monitor", env=env, catch_exceptions=False
    )


def monitor(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m monitor ARGS`` as a subprocess, so main()'s handling is what runs;
    *env* is added to an environment without REGISTRY_MONITOR_CONFIG."""
    env = {k: v for k, v in os.environ.items() if k != "REGISTRY_MONITOR_CONFIG"} | (env or {})
    env["PYTHONPATH"] = str(PROJECT)
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# ----------------------------------------------------------------------------- validate


def test_validate_the_shipped_config() -> None:
    result = monitor("--config", "config.yaml", "validate", cwd=PROJECT)
    assert (result.returncode, result.stderr) == (0, "")
    # Counted from the file itself, so that editing the watchlist does not break the test.
    shipped = yaml.safe_load((PROJECT / "config.yaml").read_text(encoding="utf-8"))
    national = len(shipped["resolvers"]["national"])
    control = len(shipped["resolvers"]["control"])
    assert result.stdout == (
        f"config.yaml: valid: vantage {shipped['vantage']}, {national} national and {control} "
        f"control resolvers, {len(shipped['watchlist'])} names\n"
    )


def test_validate_finds_config_yaml_in_the_working_directory() -> None:
    result = monitor("validate", cwd=PROJECT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config.yaml: valid: ")


def test_validate_reads_the_config_named_by_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.yaml"
    path.write_text(VALID, encoding="utf-8")
    result = invoke("validate", env={"REGISTRY_MONITOR_CONFIG": str(path)})
    assert result.exit_code == 0
    assert (
        result.stdout
        == f"{path}: valid: vantage lab, 1 national and 1 control resolvers, 2 names\n"
    )


def test_config_option_wins_over_the_environment(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(VALID, encoding="utf-8")
    result = invoke(
        "--config", str(good), "validate", env={"REGISTRY_MONITOR_CONFIG": str(tmp_path / "no")}
    )
    assert result.exit_code == 0
    assert result.stdout.startswith(f"{good}: valid: ")


# -------------------------------------------------------------------- --config after the command

# Every command that reads the config; demo reads none.
READS_CONFIG = [
    ["validate"],
    ["check"],
    ["run", "--no-commit"],
    ["diff"],
    ["history"],
    ["report"],
    ["export", "--sqlite", "out.sqlite"],
]


@pytest.mark.parametrize("command", READS_CONFIG, ids=lambda c: c[0])
def test_config_after_the_command_is_read_by_every_command_that_reads_one(
    tmp_path: Path, command: list[str]
) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    missing = tmp_path / "nope.yaml"
    # A good config.yaml in the working directory, and one in the environment: the file named
    # after the command is the one read, so every command fails on it.
    config_file(tmp_path)
    result = monitor(
        *command,
        "--config",
        str(missing),
        cwd=tmp_path,
        env={"REGISTRY_MONITOR_CONFIG": "config.yaml"},
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"Error: {missing}: cannot read the file: No such file or directory\n"


def test_validate_with_config_after_the_command(tmp_path: Path) -> None:
    path = config_file(tmp_path)
    result = monitor("validate", "--config", str(path), cwd=tmp_path / "..")
    assert (result.returncode, result.stderr) == (0, "")
    assert (
        result.stdout
        == f"{path}: valid: vantage lab, 1 national and 1 control resolvers, 2 names\n"
    )


def test_config_before_and_after_the_command_may_name_one_file(tmp_path: Path) -> None:
    config_file(tmp_path)
    result = monitor(
        "--config", "./config.yaml", "validate", "--config", "config.yaml", cwd=tmp_path
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("config.yaml: valid: ")


def test_config_before_and_after_the_command_naming_two_files_is_refused(tmp_path: Path) -> None:
    config_file(tmp_path)
    result = monitor("--config", "other.yaml", "validate", "--config", "config.yaml", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("Usage: python -m monitor validate [OPTIONS]\n")
    assert result.stderr.splitlines()[-1] == (
        "Error: --config is given twice, other.yaml before the command and config.yaml after "
        "it: give one"
    )


RESOLVERS = """\
resolvers:
  national:
    - {name: nsdi-a, address: 195.208.4.1}
  control:
    - {name: google, address: 8.8.8.8, transport: tcp}
"""

# name -> (file content, the message after "Error: "; {file} is the config's path)
BROKEN: dict[str, tuple[str, str]] = {
    "unknown key": (
        f"vantage: lab\ntimout: 2\n{RESOLVERS}watchlist: [youtube.com]\n",
        "{file}:2: timout: unknown key (did you mean 'timeout'?)",
    ),
    "bad address": (
        RESOLVERS.replace("195.208.4.1", "195.208.4.300") + "watchlist: [youtube.com]\n",
        "{file}:3: resolvers.national[0].address: '195.208.4.300' is not an IPv4 or IPv6 address",
    ),
    "duplicate resolver name": (
        RESOLVERS.replace("name: google", "name: nsdi-a") + "watchlist: [youtube.com]\n",
        "{file}:5: resolvers.control[0].name: 'nsdi-a' is already the name of the resolver "
        "on line 3",
    ),
    "bad watchlist name": (
        f'{RESOLVERS}watchlist: [youtube.com, "bad..name"]\n',
        "{file}:6: watchlist[1]: 'bad..name' is not a domain name: empty label",
    ),
    "duplicate watchlist name": (
        f"{RESOLVERS}watchlist:\n  - youtube.com\n  - YouTube.com.\n",
        "{file}:8: watchlist[1]: youtube.com is already listed on line 7",
    ),
    "min_controls above the controls": (
        f"min_controls: 2\n{RESOLVERS}watchlist: [youtube.com]\n",
        "{file}:1: min_controls: must be at most 1, the number of control resolvers, got 2",
    ),
    "unknown transport": (
        RESOLVERS.replace("transport: tcp", "transport: quic") + "watchlist: [youtube.com]\n",
        "{file}:5: resolvers.control[0].transport: must be one of udp, tcp, dot, doh, got 'quic'",
    ),
    "doh without url": (
        RESOLVERS.replace("address: 8.8.8.8, transport: tcp", "transport: doh")
        + "watchlist: [youtube.com]\n",
        "{file}:5: resolvers.control[0].url: missing: a doh resolver needs a url",
    ),
    "zero timeout": (
        f"timeout: 0\n{RESOLVERS}watchlist: [youtube.com]\n",
        "{file}:1: timeout: must be > 0 and <= 60 seconds, got 0",
    ),
    "uppercase vantage": (
        f"vantage: Lab\n{RESOLVERS}watchlist: [youtube.com]\n",
        "{file}:1: vantage: must be lowercase letters, digits and '-', got 'Lab'",
    ),
    "no resolvers": (
        "watchlist: [youtube.com]\n",
        "{file}:1: resolvers: missing: at least one national and one control resolver",
    ),
    "missing watchlist file": (
        f"watchlist_files: [nope.txt]\n{RESOLVERS}",
        "{file}:1: watchlist_files[0]: cannot read {dir}/nope.txt: No such file or directory",
    ),
    "invalid YAML": (
        f"vantage: [lab\n{RESOLVERS}",
        "{file}:2: invalid YAML: while parsing a flow sequence, expected ',' or ']', but got ':'",
    ),
    "empty file": ("", "{file}: the file holds no settings"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_validate_broken_config(tmp_path: Path, case: str) -> None:
    text, message = BROKEN[case]
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    result = invoke("--config", str(path), "validate")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == "Error: " + message.format(file=path, dir=tmp_path) + "\n"


def test_validate_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"vantage: lab\n# caf\xe9\n")
    result = invoke("--config", str(path), "validate")
    assert (result.exit_code, result.stderr) == (2, f"Error: {path}:2: not UTF-8 text\n")


def test_broken_config_via_main(tmp_path: Path) -> None:
    text, message = BROKEN["bad address"]
    (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
    # The relative default path is what the message names.
    result = monitor("validate", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "Error: " + message.format(file="config.yaml") + "\n"


@pytest.mark.parametrize("command", [["validate"], ["check"], ["check", "--json"], ["run"]])
def test_missing_config_file_exits_2(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "nope.yaml"
    result = monitor("--config", str(missing), *command, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"Error: {missing}: cannot read the file: No such file or directory\n"


def test_default_config_missing_exits_2(tmp_path: Path) -> None:
    result = invoke("check")
    assert result.exit_code == 2
    assert result.stderr == "Error: config.yaml: cannot read the file: No such file or directory\n"


def test_config_that_is_a_directory_exits_2(tmp_path: Path) -> None:
    result = monitor("--config", str(tmp_path), "validate", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.endswith(
        f"Error: Invalid value for '--config': File '{tmp_path}' is a directory.\n"
    )


# A Citizen Lab test list as the project publishes them (github.com/citizenlab/test-lists):
# its header, URLs rather than names, a host on several rows, and DoH endpoints given by address.
DOH = "/dns-query?dns=q80BAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB"
ANON = "ANON,Anonymization and circumvention tools,2020-01-14,OONI,DoH endpoint"
CITIZEN_LAB_CSV = f"""\
url,category_code,category_description,date_added,source,notes
https://www.bbc.com/russian/,NEWS,News Media,2018-09-13,OONI,
https://www.dw.com/ru/,NEWS,News Media,2018-09-13,OONI,
http://rutracker.org/,FILE,File-sharing,2014-04-15,citizenlab,largest torrent sharing service
https://rutracker.org/forum/index.php/,FILE,File-sharing,2017-09-28,igorv,"most popular, monitor"
https://1.1.1.1{DOH},{ANON}
https://1.0.0.1{DOH},{ANON}
https://8.8.8.8{DOH},{ANON}
https://8.8.4.4{DOH},{ANON}
https://9.9.9.9{DOH},{ANON}
https://149.112.112.112{DOH},{ANON}
https://[2606:4700:4700::1111]{DOH},{ANON}
https://www.youtube.com/channel/UCsAw3WynQJMm7tMy093y37A/,POLR,Political Criticism,2017-09-28,igorv,
https://www.youtube.com/user/openrussia2014/,NEWS,News Media,2017-12-14,OONI,Ordered blocked
"""
CITIZEN_LAB_NAMES = ["www.bbc.com", "www.dw.com", "rutracker.org", "www.youtube.com"]


def citizen_lab_config(where: Path, resolvers: str = RESOLVERS) -> Path:
    (where / "ru.csv").write_text(CITIZEN_LAB_CSV, encoding="utf-8")
    path = where / "config.yaml"
    path.write_text(
        f"{resolvers}watchlist:\n  - {{domain: www.bbc.com, label: BBC}}\n"
        "watchlist_files: [ru.csv]\n",
        encoding="utf-8",
    )
    return path


def test_validate_says_what_a_citizen_lab_list_skipped_and_merged(tmp_path: Path) -> None:
    citizen_lab_config(tmp_path)
    result = monitor("validate", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        "config.yaml: valid: vantage default, 1 national and 1 control resolvers, 4 names\n"
        "skipped 7 IP addresses (a watchlist is for names):\n"
        f"  ru.csv:6: https://1.1.1.1{DOH}\n"
        f"  ru.csv:7: https://1.0.0.1{DOH}\n"
        f"  ru.csv:8: https://8.8.8.8{DOH}\n"
        f"  ru.csv:9: https://8.8.4.4{DOH}\n"
        f"  ru.csv:10: https://9.9.9.9{DOH}\n"
        "  and 2 more\n"
        "merged 3 repeated names (each name is watched once):\n"
        "  ru.csv:2: https://www.bbc.com/russian/ (www.bbc.com, first on config.yaml:7)\n"
        "  ru.csv:5: https://rutracker.org/forum/index.php/ (rutracker.org, first on ru.csv:4)\n"
        "  ru.csv:14: https://www.youtube.com/user/openrussia2014/ "
        "(www.youtube.com, first on ru.csv:13)\n"
    )


def test_validate_says_the_same_of_a_plain_list(tmp_path: Path) -> None:
    (tmp_path / "names.txt").write_text(
        "# one name a line\nyoutube.com\n192.0.2.1\nhttps://YouTube.com/watch\n",
        encoding="utf-8",
    )
    (tmp_path / "config.yaml").write_text(
        f"{RESOLVERS}watchlist_files: [names.txt]\n", encoding="utf-8"
    )
    result = monitor("validate", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        "config.yaml: valid: vantage default, 1 national and 1 control resolvers, 1 names\n"
        "skipped 1 IP address (a watchlist is for names):\n"
        "  names.txt:3: 192.0.2.1\n"
        "merged 1 repeated name (each name is watched once):\n"
        "  names.txt:4: https://YouTube.com/watch (youtube.com, first on names.txt:2)\n"
    )


def test_validate_escapes_what_it_shows_of_a_skipped_line(tmp_path: Path) -> None:
    (tmp_path / "names.txt").write_text("http://192.0.2.1/\x1b[2J\n", encoding="utf-8")
    (tmp_path / "config.yaml").write_text(
        f"{RESOLVERS}watchlist: [a.example]\nwatchlist_files: [names.txt]\n", encoding="utf-8"
    )
    result = monitor("validate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "  names.txt:1: http://192.0.2.1/\\x1b[2J"


def test_check_watches_each_name_of_a_citizen_lab_list_once(tmp_path: Path) -> None:
    records = {(name, "A"): ["93.184.216.34"] for name in ["example.com", *CITIZEN_LAB_NAMES]}
    with Lab({"nat": World(records), "ctl": World(records)}) as lab:
        resolvers = (
            "record_types: [A]\nconfirm: 0\nresolvers:\n"
            f"  national: [{{name: nat, address: 127.0.0.1, port: {lab['nat'].port}}}]\n"
            f"  control: [{{name: ctl, address: 127.0.0.1, port: {lab['ctl'].port}}}]\n"
        )
        citizen_lab_config(tmp_path, resolvers)
        result = invoke("check", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert [(d["domain"], d["verdict"]) for d in document["domains"]] == [
        (name, "present") for name in CITIZEN_LAB_NAMES
    ]


# ----------------------------------------------------------------------------- usage errors


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(VALID, encoding="utf-8")
    return path


def test_run_push_and_no_commit_exits_2(tmp_path: Path) -> None:
    result = monitor(
        "--config", str(config_file(tmp_path)), "run", "--push", "--no-commit", cwd=tmp_path
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "Error: --push and --no-commit cannot be used together\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["history", "--since", "2026-13-01"],
            "Error: --since '2026-13-01': expected a date as YYYY-MM-DD\n",
        ),
        (
            ["history", "--since", "2026-1-01"],
            "Error: --since '2026-1-01': expected a date as YYYY-MM-DD\n",
        ),
        (
            ["run", "--no-commit", "--date", "2026-02-30"],
            "Error: --date '2026-02-30': expected a date as YYYY-MM-DD\n",
        ),
        (["check", "a b"], "Error: 'a b' is not a domain name: contains whitespace\n"),
        (["history", "bad..name"], "Error: 'bad..name' is not a domain name: empty label\n"),
    ],
)
def test_bad_arguments_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke("--config", str(config_file(tmp_path)), *args)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", message)


@pytest.mark.parametrize("command", [["run", "--no-commit"], ["diff"], ["history"]])
def test_outside_a_git_repository_exits_2(tmp_path: Path, command: list[str]) -> None:
    not_a_repo = tmp_path / "plain"
    not_a_repo.mkdir()
    result = invoke("--config", str(config_file(tmp_path)), *command, "--repo", str(not_a_repo))
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: not a git repository: {not_a_repo} (use --repo DIR or git init)\n"
    )


@pytest.mark.parametrize(
    ("args", "last_line"),
    [
        (["frobnicate"], "Error: No such command 'frobnicate'."),
        (["check", "--bogus"], "Error: No such option '--bogus'."),
        # demo reads no config, so it takes no --config.
        (["demo", "--config", "x.yaml"], "Error: No such option '--config'."),
        (
            ["history", "--format", "xml"],
            "Error: Invalid value for '--format': 'xml' is not one of 'table', 'csv', 'json'.",
        ),
    ],
)
def test_click_usage_errors_via_main_exit_2(
    tmp_path: Path, args: list[str], last_line: str
) -> None:
    result = monitor(*args, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == last_line
    assert result.stderr.startswith("Usage: ")


# ----------------------------------------------------------------------------- help


HELP: dict[str, tuple[str, list[str]]] = {
    # command -> (usage line, the options of DESIGN.md its --help must list)
    "validate": ("Usage: registry-monitor validate [OPTIONS]", []),
    "check": ("Usage: registry-monitor check [OPTIONS] [DOMAINS]...", ["--json"]),
    "run": (
        "Usage: registry-monitor run [OPTIONS]",
        ["--repo", "--date", "--no-commit", "--push", "--json", "--exit-code"],
    ),
    "diff": ("Usage: registry-monitor diff [OPTIONS] [REV_A] [REV_B]", ["--repo", "--json"]),
    "history": (
        "Usage: registry-monitor history [OPTIONS] [DOMAINS]...",
        ["--repo", "--since", "--format"],
    ),
    "demo": ("Usage: registry-monitor demo [OPTIONS]", ["--keep"]),
}


def test_every_command_of_the_design_is_there() -> None:
    assert set(cli.commands) >= set(HELP)


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: registry-monitor {command} [OPTIONS]")
    assert cli.commands[command].help, f"{command} has no docstring"


@pytest.mark.parametrize("command", list(HELP))
def test_command_help(command: str) -> None:
    usage, options = HELP[command]
    result = invoke(command, "--help")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == usage
    # The docstring's first line is the help text's first paragraph.
    doc = (cli.commands[command].help or "").split("\n\n")[0].split()
    assert " ".join(" ".join(lines[1:]).split()).startswith(" ".join(doc))
    listed = [line.split()[0].rstrip(",") for line in lines if line.startswith("  -")]
    # DESIGN.md's options at least; a command may grow more (run --summary, say).
    assert set(listed) >= {*options, "-h"}


def test_top_level_help_lists_every_command() -> None:
    result = monitor("--help", cwd=PROJECT)
    assert (result.returncode, result.stderr) == (0, "")
    commands = result.stdout.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in commands] == sorted(cli.commands)
    assert "--config FILE" in result.stdout


@pytest.mark.parametrize("command", list(HELP))
def test_command_help_via_main(command: str) -> None:
    result = monitor(command, "-h", cwd=PROJECT)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(f"Usage: python -m monitor {command} [OPTIONS]")


def test_version() -> None:
    result = monitor("--version", cwd=PROJECT)
    assert (result.returncode, result.stdout) == (0, f"registry-monitor, version {__version__}\n")
