"""Process-wide services for a function: built once, on first use, from the environment."""

from __future__ import annotations

import asyncio
from typing import Callable

from medflow.bootstrap import Services, build_services


class ServiceHolder:
    """Builds ``Services`` lazily (a cold function pays once) or serves ones given to it."""

    def __init__(self, factory: Callable[[], Services] = build_services, services: Services | None = None) -> None:
        self._factory = factory
        self._services = services
        self._lock = asyncio.Lock()

    async def get(self) -> Services:
        if self._services is None:
            async with self._lock:
                if self._services is None:
                    services = self._factory()
                    await services.objects.ensure_buckets()
                    self._services = services
        return self._services

    def set(self, services: Services) -> None:
        self._services = services
