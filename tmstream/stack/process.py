"""Local service processes: started detached with a pid file and a log, stopped only if ours."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tmstream.ground.exceptions import StackError


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def http_ready(url: str) -> bool:
    """True when ``url`` answers 200 (Prometheus's and Alertmanager's ``/-/ready``)."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def require(service: str, binary: str, package: str, port: int, port_variable: str) -> None:
    """Fail with one clear line when ``binary`` is missing or ``port`` is taken."""
    if not shutil.which(binary):
        raise StackError(f"{binary} is not installed (apt-get install -y {package})")
    if not port_is_free(port):
        raise StackError(
            f"{service}: port {port} is already in use by another process (set {port_variable} or stop it)"
        )


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


@dataclass
class ServiceProcess:
    """One process of the local stack, tracked by ``<folder>/pid`` and logging to ``<folder>/<name>.log``.

    The pid file stores the pid and the process start time, so a recycled pid is never mistaken
    for ours (and never killed).
    """

    name: str
    folder: Path

    @property
    def pid_file(self) -> Path:
        return self.folder / "pid"

    @property
    def log_file(self) -> Path:
        return self.folder / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of our running process, or None."""
        try:
            pid_text, started = self.pid_file.read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        return pid if _start_time(pid) == started else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, command: list[str], env: dict[str, str] | None = None) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            try:
                child = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.folder,
                    env={**os.environ, **(env or {})},
                    start_new_session=True,
                )
            except OSError as exc:
                raise StackError(f"{self.name}: cannot start {command[0]}: {exc.strerror}") from exc
        started = wait_until(lambda: _start_time(child.pid) is not None, 5, 0.05)
        if not started:
            raise StackError(f"{self.name} exited at once; see {self.log_file}")
        self.pid_file.write_text(f"{child.pid} {_start_time(child.pid)}\n")
        return child.pid

    def exited_early(self) -> bool:
        """True when the pid file names a process that is gone (it crashed while starting)."""
        return self.pid_file.exists() and not self.running()

    def stop(self, timeout: float = 20) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; returns False when nothing of ours was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.killpg(pid, signal.SIGTERM)
        if not wait_until(lambda: _start_time(pid) is None, timeout, 0.1):
            os.killpg(pid, signal.SIGKILL)
            wait_until(lambda: _start_time(pid) is None, 5, 0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 5) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/<pid>/stat); None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return None
    return fields[19]
