"""What the model server logs about a failed request keeps the exception's type and place,
never its message (KServe's messages can quote the request's bytes)."""

from __future__ import annotations

import logging

from medflow.inference.middleware import WithholdExceptionText


def test_exception_messages_are_withheld_from_the_log(caplog):
    logger = logging.getLogger("test.models.withhold")
    logger.addFilter(WithholdExceptionText())
    try:
        raise ValueError("Failed to encode b'DICM...PATIENT^NAME' using UTF-8")
    except ValueError as exc:
        with caplog.at_level(logging.ERROR, logger="test.models.withhold"):
            logger.error("Exception:", exc_info=exc)
    text = caplog.text
    assert "PATIENT" not in text and "DICM" not in text
    assert "ValueError" in text and "withheld" in text
