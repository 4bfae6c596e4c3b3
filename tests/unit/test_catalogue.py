"""The events catalogue: topics, dead-letter topics, consumers, schema validation, namespaces."""

from __future__ import annotations

import pytest

from medflow.bus.catalogue import Catalogue, InvalidEventData, UnknownEventType
from medflow.errors import PermanentError

AUDIT = "org.medflow.audit.recorded.v1"
VALID = {"occurred_at": "2026-11-21T10:00:00+00:00", "action": "login", "resource_type": "user", "outcome": "success"}


def test_every_declared_type_has_a_topic_a_schema_and_valid_examples():
    c = Catalogue()
    assert c.event_types and all(c.topic_for(t) for t in c.event_types)
    c.validate(AUDIT, VALID)


def test_invalid_data_names_the_field_but_not_the_value():
    with pytest.raises(InvalidEventData) as caught:
        Catalogue().validate(AUDIT, {**VALID, "outcome": "张伟"})
    assert "outcome" in str(caught.value) and "张伟" not in str(caught.value)
    assert isinstance(caught.value, PermanentError)  # dead-lettered, never retried


def test_an_unknown_type_is_permanent():
    with pytest.raises(UnknownEventType):
        Catalogue().topic_for("org.medflow.nothing.here.v1")


def test_a_namespace_prefixes_topics_groups_and_dead_letter_topics():
    plain, spaced = Catalogue(), Catalogue(namespace="staging")
    assert spaced.topic_for(AUDIT) == "staging." + plain.topic_for(AUDIT)
    group = spaced.consumers[0].group
    assert group == "staging.audit_sink"
    assert spaced.dead_letter_topic(group) == "staging.medflow.deadletter.audit_sink"
    assert plain.dead_letter_topic("audit_sink") == "medflow.deadletter.audit_sink"


def test_every_consumer_names_a_function_folder():
    from medflow.runtime.registry import function_sources
    assert {c.function for c in Catalogue().consumers} <= set(function_sources())
