"""Redis (Debian's ``redis-server``) as a local process, persisted under the state folder."""

from __future__ import annotations

import shutil

import redis

from tmstream.exceptions import StackError
from tmstream.settings import Settings
from tmstream.stack.process import ServiceProcess, port_is_free


def redis_client(settings: Settings) -> redis.Redis:
    """A client for the configured Redis; the password comes from settings, never from a log."""
    password = settings.redis.password.get_secret_value() if settings.redis.password else None
    return redis.Redis.from_url(
        settings.redis.effective_url, password=password, socket_timeout=5, socket_connect_timeout=3
    )


class RedisService:
    name = "redis"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process = ServiceProcess("redis", settings.state_dir / "redis")

    @property
    def address(self) -> str:
        return self.settings.redis.effective_url

    @property
    def managed(self) -> bool:
        return not self.settings.redis.external

    def healthy(self) -> bool:
        try:
            return bool(redis_client(self.settings).ping())
        except (redis.RedisError, OSError):
            return False

    def preflight(self) -> None:
        if not shutil.which("redis-server"):
            raise StackError("redis-server is not installed (apt-get install -y redis-server)")
        if not port_is_free(self.settings.redis.port):
            raise StackError(
                f"redis: port {self.settings.redis.port} is already in use by another process "
                "(set TMSTREAM_REDIS_PORT or stop it)"
            )

    def start(self) -> None:
        folder = self.process.folder
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"port {self.settings.redis.port}",
            "bind 127.0.0.1",
            f"dir {folder}",
            "appendonly yes",
            "appendfsync everysec",
            "save 60 1000",
            "daemonize no",
        ]
        if self.settings.redis.password:
            lines.append(f"requirepass {self.settings.redis.password.get_secret_value()}")
        config = folder / "redis.conf"
        config.touch(mode=0o600)
        config.chmod(0o600)  # it may hold the password: readable by its owner only
        config.write_text("\n".join(lines) + "\n")
        self.process.start(["redis-server", str(config)])
