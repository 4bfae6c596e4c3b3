"""A cached value read again is answered with the bytes rendered the first time; a new value is rendered anew."""

import json

from pydantic import BaseModel

from medflow.runtime.render import RenderMemo


class Out(BaseModel):
    names: list[str]


def test_the_same_object_is_rendered_once_and_a_new_one_is_rendered_again():
    calls = []

    def render(value):
        calls.append(value)
        return Out(names=list(value))

    memo = RenderMemo(render)
    shared = ("a", "b")
    assert json.loads(memo(shared).body) == {"names": ["a", "b"]}
    assert memo(shared) is memo(shared)
    assert len(calls) == 1
    fresh = ["a", "c"]  # an equal-looking but distinct value (e.g. read from SQL) is rendered, never confused
    assert json.loads(memo(fresh).body) == {"names": ["a", "c"]}
    assert len(calls) == 2


def test_the_memo_is_bounded_and_drops_the_least_recently_used():
    memo = RenderMemo(lambda v: Out(names=[v[0]]), size=2)
    a, b, c = ["a"], ["b"], ["c"]
    first = memo(a)
    memo(b)
    memo(c)
    assert memo(a) is not first  # a was dropped and rendered again
    assert json.loads(memo(a).body) == {"names": ["a"]}
