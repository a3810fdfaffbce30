"""Redis (Debian's ``redis-server``) as a local process, persisted under the state folder."""

from __future__ import annotations

import redis

from tmstream.ground.exceptions import StackError
from tmstream.ground.redis import redis_client
from tmstream.ground.settings import Settings
from tmstream.stack.process import ServiceProcess, require


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
        redis_settings = self.settings.redis
        secret = redis_settings.password.get_secret_value() if redis_settings.password else ""
        if redis_settings.username and not secret:
            raise StackError("redis.username needs redis.password (or redis.password_file)")
        if any(c.isspace() or c in "\"'\\" for c in f"{redis_settings.username or ''}{secret}"):
            raise StackError("redis.username and redis.password may not hold spaces, quotes or backslashes")
        require("redis", "redis-server", "redis-server", redis_settings.port, "TMSTREAM_REDIS_PORT")

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
        username, password = self.settings.redis.username, self.settings.redis.password
        if username and password:  # an ACL user; the default user is switched off
            lines += ["user default off", f"user {username} on >{password.get_secret_value()} ~* &* +@all"]
        elif password:
            lines.append(f"requirepass {password.get_secret_value()}")
        config = folder / "redis.conf"
        config.touch(mode=0o600)
        config.chmod(0o600)  # it may hold the password: readable by its owner only
        config.write_text("\n".join(lines) + "\n")
        self.process.start(["redis-server", str(config)])
