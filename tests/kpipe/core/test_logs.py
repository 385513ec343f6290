from __future__ import annotations

import io
import json
import logging

from kpipe.core.logs import json_handler, log_context


def test_every_line_is_json_with_the_run_and_step() -> None:
    handler = json_handler("resize")
    stream = io.StringIO()
    handler.setStream(stream)
    logger = logging.getLogger("kpipe.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with log_context(run="r1", step="small"):
            logger.info("resized %s", "cat.jpg")
        logger.info("between runs")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "resized cat.jpg"
    assert (first["component"], first["run"], first["step"], first["level"]) == (
        "resize",
        "r1",
        "small",
        "INFO",
    )
    assert "time" in first
    assert second["run"] is None
