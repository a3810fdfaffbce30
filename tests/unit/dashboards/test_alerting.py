"""The alert rules parse and pass their promtool unit tests; the Alertmanager config is valid."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from stream_workers.events import CRITICAL_SUBSYSTEMS, SUBSYSTEMS
from tmstream.ground.settings import PROJECT_ROOT

PROMETHEUS = PROJECT_ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/install.sh installs it)")
    return path


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [tool("promtool"), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_every_alert() -> None:
    tests = sorted((PROMETHEUS / "tests").glob("*.yml"))
    result = subprocess.run(
        [tool("promtool"), "test", "rules", *map(str, tests)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", "".join(path.read_text() for path in tests)))
    defined = {rule["alert"] for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
               for rule in group["rules"] if "alert" in rule}  # fmt: skip
    assert defined == tested, "every alert needs a promtool unit test"


def test_critical_subsystem_alert_matches_the_code_letters() -> None:
    rules = yaml.safe_load((PROMETHEUS / "rules" / "tmstream-alerts.yml").read_text())
    expr = next(
        rule["expr"]
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "TmstreamCriticalSubsystemAnomaly"
    )
    letters = re.search(r'channel=~"\[([A-Z]+)\]-\.\*"', expr)
    assert letters is not None
    assert set(letters.group(1)) == {
        letter for letter, name in SUBSYSTEMS.items() if name in CRITICAL_SUBSYSTEMS
    }


def test_alertmanager_config_is_valid() -> None:
    config = PROJECT_ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    result = subprocess.run([tool("amtool"), "check-config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
