"""Trace context propagation and opaque keyset cursors."""

from __future__ import annotations

import pytest

from medflow.errors import Problem
from medflow.pagination import decode_cursor, encode_cursor
from medflow.tracing import child_of

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_continues_the_callers_trace():
    ctx = child_of(PARENT)
    assert ctx.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert ctx.parent_span_id == "00f067aa0ba902b7" and ctx.span_id != "00f067aa0ba902b7"
    assert ctx.traceparent.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")


@pytest.mark.parametrize("header", [None, "", "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
                                    "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01"])
def test_a_missing_or_invalid_traceparent_starts_a_new_trace(header):
    ctx = child_of(header)
    assert len(ctx.trace_id) == 32 and ctx.parent_span_id is None and ctx.trace_id != "0" * 32


def test_cursor_round_trip_keeps_types():
    assert decode_cursor(encode_cursor(["名字", "01ABC", 3]), 3) == ["名字", "01ABC", 3]


@pytest.mark.parametrize("bad", ["", "%%%", encode_cursor(["only-one"]), encode_cursor({"a": 1})])
def test_a_tampered_cursor_is_a_400(bad):
    with pytest.raises(Problem) as caught:
        decode_cursor(bad, 2)
    assert caught.value.status == 400 and caught.value.code == "invalid-cursor"
