"""Fail points kill the process exactly at the armed hit, and a bad spec names itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tmstream.ground.exceptions import ConfigError
from tmstream.ground.failpoints import Trigger, parse

HITS = """
import sys
from tmstream.ground.failpoints import FailPoints
points = FailPoints.from_environment()
for n, point in enumerate(sys.argv[1].split(",")):
    print(n, flush=True)
    points(point)
"""


def run(spec: str, hits: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HITS, hits],
        capture_output=True,
        text=True,
        env={"TMSTREAM_FAILPOINTS": spec, "PYTHONPATH": "."},
        timeout=60,
    )


def test_specs_parse() -> None:
    assert parse("") == []
    assert parse("emission.sent_to_topic@2; snapshot.queued@1>emission.sent_to_all@3") == [
        Trigger("emission.sent_to_topic", 2),
        Trigger("snapshot.queued", 1, ("emission.sent_to_all", 3)),
    ]


@pytest.mark.parametrize("spec", ["emission@0", "x", "a@1>b@2>c@3", "a@-1", "A@1"])
def test_a_bad_spec_is_a_config_error_naming_it(spec: str) -> None:
    with pytest.raises(ConfigError, match="TMSTREAM_FAILPOINTS"):
        parse(spec)


@pytest.mark.parametrize(
    ("spec", "hits", "last"),
    [
        ("b@2", "a,b,a,b,a", 3),
        ("b@1>a@2", "b,a,b,a,b,b", 4),  # the b before the second a does not count
        ("", "a,b,c", None),
    ],
)
def test_the_process_dies_by_sigkill_at_the_armed_hit(spec: str, hits: str, last: int | None) -> None:
    result = run(spec, hits)
    printed = [int(line) for line in result.stdout.split()]
    if last is None:
        assert result.returncode == 0 and printed == [0, 1, 2]
    else:
        assert result.returncode == -signal.SIGKILL and printed[-1] == last, result


def test_a_stop_action_freezes_the_process_at_the_armed_hit_until_sigcont() -> None:
    assert parse("a@2:stop") == [Trigger("a", 2, None, "stop")]
    with pytest.raises(ConfigError, match="'a@2:pause' has action 'pause'"):
        parse("a@2:pause")
    process = subprocess.Popen(
        [sys.executable, "-c", HITS, "a,a,a"],
        stdout=subprocess.PIPE,
        text=True,
        env={"TMSTREAM_FAILPOINTS": "a@2:stop", "PYTHONPATH": "."},
    )
    assert process.stdout is not None
    assert [process.stdout.readline() for _ in range(2)] == ["0\n", "1\n"]
    _, status = os.waitpid(process.pid, os.WUNTRACED)  # it stops itself at the second hit
    assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGSTOP
    process.send_signal(signal.SIGCONT)
    out, _ = process.communicate(timeout=60)
    assert out == "2\n" and process.returncode == 0
