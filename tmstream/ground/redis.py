"""Redis clients from settings: the ACL user, the password (never logged) and bounded timeouts."""

from __future__ import annotations

from typing import Any

import redis

from tmstream.ground.settings import Settings


def redis_client(settings: Settings) -> redis.Redis:
    """A client for the configured Redis; the password comes from settings, never from a log."""
    return redis.Redis.from_url(settings.redis.effective_url, **redis_credentials(settings))


def redis_credentials(settings: Settings) -> dict[str, Any]:
    """Client options from settings (never from a log): the ACL user and password, and timeouts."""
    password = settings.redis.password.get_secret_value() if settings.redis.password else None
    return {
        "username": settings.redis.username,
        "password": password,
        "socket_timeout": 5,
        "socket_connect_timeout": 3,
    }
