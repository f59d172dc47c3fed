"""The Logging-query subset infra/monitoring's filters are written in, evaluated as Logging does."""

import pytest

from infra.logfilter import FilterError, matches

ENTRY = {
    "severity": "ERROR",
    "resource": {"type": "cloud_run_revision", "labels": {"service_name": "sweep-auto-offline"}},
    "httpRequest": {"status": 503},
    "jsonPayload": {"event": "sweep.aborted", "reason": "valkey_error", "drift": 7, "message": "x y"},
}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('jsonPayload.event="sweep.aborted"', True),
        ('jsonPayload.event="sweep.finished"', False),
        ('resource.type="cloud_run_revision" AND jsonPayload.reason="valkey_error"', True),
        ('resource.type="cloud_run_revision" jsonPayload.reason="valkey_error"', True),  # juxtaposition is AND
        ('jsonPayload.event="a" OR jsonPayload.event="sweep.aborted"', True),
        ('(jsonPayload.event="a" OR jsonPayload.event="b") AND severity>=ERROR', False),
        ('NOT jsonPayload.event="a" AND severity>=WARNING', True),
        ("severity>=CRITICAL", False),
        ("httpRequest.status>=500 AND httpRequest.status!=503", False),
        ("httpRequest.status=503", True),
        ("jsonPayload.drift>5", True),
        ('jsonPayload.missing!="x"', False),  # a comparison on a missing field is false
        ('jsonPayload.message:"x"', True),
        ('jsonPayload.event="a" OR jsonPayload.event="b" AND severity=ERROR', False),  # AND binds tighter
    ],
)
def test_filters_evaluate_as_logging_does(query, expected):
    assert matches(query, ENTRY) is expected


@pytest.mark.parametrize("query", ['jsonPayload.event=~"a.*"', '(jsonPayload.event="a"', "AND", 'a="b" OR'])
def test_a_filter_outside_the_subset_is_refused_not_guessed(query):
    with pytest.raises(FilterError):
        matches(query, ENTRY)
