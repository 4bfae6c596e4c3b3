"""Rendering a shared, read-only value once: its JSON is kept beside it.

The cache-aside's process-local tier answers a hot read with the same decoded object each
time (``medflow/cache/aside.py``). Turning that object into response models and JSON again
for every request costs more than finding it; a ``RenderMemo`` keeps the bytes rendered the
first time, keyed by the object's identity and holding the object, so an identity can never
be confused with a later object's. A value read from SQL (a miss, or the cache switched off)
is a new object each time and is simply rendered. Only values nobody mutates belong here.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, TypeVar

from pydantic import BaseModel

from medflow.runtime.spec import RenderedJson

T = TypeVar("T")


class RenderMemo:
    """The last ``size`` rendered values of one operation."""

    def __init__(self, render: Callable[[T], BaseModel], size: int = 1024) -> None:
        self._render, self._size = render, size
        self._entries: OrderedDict[int, tuple[object, RenderedJson]] = OrderedDict()

    def __call__(self, value: T) -> RenderedJson:
        key = id(value)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is value:
            self._entries.move_to_end(key)
            return entry[1]
        rendered = RenderedJson(self._render(value).model_dump_json().encode())
        self._entries[key] = (value, rendered)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return rendered
