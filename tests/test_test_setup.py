"""tools/test-setup: which packages it installs, and how, checked without apt.

The programs it looks for are put in a directory of their own (TEST_SETUP_PATH), so a test
decides what this machine "has"; --dry-run says what it would install. The install itself runs
against stand-ins for sudo, id and apt-get that record their arguments and change nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from censors import PACKAGES as CENSOR_PACKAGES

PROJECT = Path(__file__).resolve().parent.parent
SCRIPT = PROJECT / "tools" / "test-setup"
EVERY_PACKAGE = [
    "nsd",
    "unbound",
    "bind9",
    "knot-resolver",
    "pdns-recursor",
    "dnsmasq-base",
    "chromium",
]
# One program for each package.
PROGRAMS = ["nsd", "unbound", "named", "kresd", "pdns_recursor", "dnsmasq", "chromium"]
BROWSERS = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]


def executable(directory: Path, name: str, body: str = "exit 0\n") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}", encoding="utf-8")
    path.chmod(0o755)
    return path


def setup(
    tmp_path: Path,
    has: list[str],
    *args: str,
    path: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the script on a machine that has the programs *has*; *path* replaces PATH."""
    programs = tmp_path / "programs"
    programs.mkdir(exist_ok=True)
    for name in has:
        executable(programs, name)
    environment = dict(os.environ, TEST_SETUP_PATH=str(programs), **(env or {}))
    if path is not None:
        environment["PATH"] = path
    return subprocess.run(
        [str(SCRIPT), *args],
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def how() -> str:
    """How the script installs on this machine: the same rule it follows."""
    return "as root" if os.geteuid() == 0 else "with sudo"


@pytest.mark.parametrize(
    ("has", "installs"),
    [
        ([], EVERY_PACKAGE),
        (["nsd", "unbound"], EVERY_PACKAGE[2:]),
        (PROGRAMS[:-1], ["chromium"]),
        # Any Chromium will do: GitHub's runners have Google Chrome.
        ([*PROGRAMS[:-1], "google-chrome"], []),
        ([*PROGRAMS[:-1], "chromium-browser"], []),
        (["dnsmasq", "kresd"], ["nsd", "unbound", "bind9", "pdns-recursor", "chromium"]),
    ],
    ids=["nothing", "nsd-and-unbound", "no-chromium", "google-chrome", "chromium-browser", "some"],
)
def test_dry_run_names_the_missing_packages_in_order(
    tmp_path: Path, has: list[str], installs: list[str]
) -> None:
    if not installs:
        done = setup(tmp_path, has, "--dry-run")
        assert (done.returncode, done.stderr) == (0, "")
        assert (
            done.stdout == "test-setup: nothing to install, every program the tests need is here\n"
        )
        return
    if os.geteuid() != 0 and shutil.which("sudo") is None:
        pytest.fail("this test needs root or sudo on PATH to know what the script would say")
    done = setup(tmp_path, has, "--dry-run")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"test-setup: would install {' '.join(installs)} (apt-get, {how()})\n"


def test_a_program_that_is_not_an_executable_file_does_not_count(tmp_path: Path) -> None:
    programs = tmp_path / "programs"
    (programs / "nsd").mkdir(parents=True)  # a directory
    (programs / "unbound").write_text("#!/bin/sh\n")  # not executable
    done = setup(tmp_path, PROGRAMS[2:], "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("test-setup: would install nsd unbound (apt-get, ")


def test_the_list_is_every_package_the_tests_ask_for() -> None:
    # nsd and unbound (tests/realdns.py), the censoring resolvers (tests/censors.py), and the
    # browsers tests/test_report_browser.py accepts.
    source = SCRIPT.read_text(encoding="utf-8")
    for program, package in {"nsd": "nsd", "unbound": "unbound", **CENSOR_PACKAGES}.items():
        assert f'"{package}: {program}"' in source
    assert f'"chromium: {" ".join(BROWSERS)}"' in source
    browser_test = (PROJECT / "tests" / "test_report_browser.py").read_text(encoding="utf-8")
    assert f"for name in ({', '.join(map(repr, BROWSERS))}):".replace("'", '"') in browser_test


def stand_ins(tmp_path: Path, uid: int) -> tuple[Path, Path]:
    """Put id, sudo and apt-get stand-ins first on PATH; return (their directory, their log)."""
    bin_dir = tmp_path / "bin"
    log = tmp_path / "log"
    executable(bin_dir, "id", f'[ "$1" = -u ] && echo {uid}\n')
    # sudo records what it was asked to run (and its input, if any), and runs nothing: no file
    # is written, no package installed.
    executable(
        bin_dir,
        "sudo",
        f'echo "sudo $*" >> {log}\n'
        f'[ "$1" = tee ] && printf "stdin: %s\\n" "$(tr "\\n" "|")" >> {log}\n'
        "exit 0\n",
    )
    executable(bin_dir, "apt-get", f'echo "apt-get $*" >> {log}\nexit 1\n')
    return bin_dir, log


@pytest.mark.parametrize("policy_there", [False, True], ids=["no-policy-rc.d", "policy-rc.d"])
def test_without_root_it_installs_with_sudo_and_keeps_services_from_starting(
    tmp_path: Path, policy_there: bool
) -> None:
    bin_dir, log = stand_ins(tmp_path, uid=1000)
    policy = tmp_path / "policy-rc.d"
    if policy_there:
        policy.write_text("#!/bin/sh\nexit 0\n")
    done = setup(
        tmp_path,
        PROGRAMS[:2],
        path=f"{bin_dir}:/usr/bin:/bin",
        env={"TEST_SETUP_POLICY": str(policy)},
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        "test-setup: installing bind9 knot-resolver pdns-recursor dnsmasq-base chromium "
        "(apt-get, with sudo)\n"
    )
    packages = "bind9 knot-resolver pdns-recursor dnsmasq-base chromium"
    install = [
        "sudo apt-get update -q",
        f"sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q {packages}",
    ]
    # A policy-rc.d that refuses to start services, made for the install and removed after
    # (sudo was given its text); one that is there already is left as it is.
    made = [f"sudo tee {policy}", "stdin: #!/bin/sh|exit 101|", f"sudo chmod +x {policy}"]
    removed = [f"sudo rm -f {policy}"]
    expected = install if policy_there else [*made, *install, *removed]
    assert log.read_text().splitlines() == expected


def test_without_root_or_sudo_it_says_what_to_install(tmp_path: Path) -> None:
    bin_dir, log = stand_ins(tmp_path, uid=1000)
    (bin_dir / "sudo").unlink()
    # PATH without a sudo: the stand-ins, and a directory holding only what the script runs.
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("bash", "sed", "cat"):
        found = shutil.which(name)
        assert found is not None
        (tools / name).symlink_to(found)
    done = setup(tmp_path, PROGRAMS[2:], path=f"{bin_dir}:{tools}")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "test-setup: missing nsd unbound; as root: "
        "apt-get update && apt-get install -y nsd unbound\n"
    )
    assert not log.exists()


def test_with_everything_there_it_touches_nothing(tmp_path: Path) -> None:
    bin_dir, log = stand_ins(tmp_path, uid=1000)
    done = setup(tmp_path, PROGRAMS, path=f"{bin_dir}:/usr/bin:/bin")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "test-setup: nothing to install, every program the tests need is here\n"
    assert not log.exists()


@pytest.mark.parametrize("args", [["--bogus"], ["--dry-run", "--dry-run"]])
def test_bad_usage_exits_2(tmp_path: Path, args: list[str]) -> None:
    done = setup(tmp_path, [], *args)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("test-setup: ")
    assert "usage: tools/test-setup [--dry-run]" in done.stderr
