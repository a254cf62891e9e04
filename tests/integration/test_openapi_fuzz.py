"""Schemathesis over ``/api/openapi.json`` against the running gateway, as a server
admin (the widest access): no 500 for any generated input, and every response matches
its documented status code, content type and schema."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.system import ADMIN_TOKEN

MAX_EXAMPLES = 20
#: The event stream never ends by itself: it is tested by reading it (test_api_events).
STREAMS = r"/events/"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz(operation, base_url: str) -> int:
    """Run up to ``MAX_EXAMPLES`` generated requests against one operation; raise on the
    first failed check (Hypothesis shrinks it to a minimal example first). Returns how
    many requests were made."""
    calls = 0

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case) -> None:
        nonlocal calls
        calls += 1
        case.call_and_validate(
            base_url=base_url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            checks=CHECKS,
            timeout=30,
        )

    run()
    return calls


def test_generated_requests_get_documented_answers(system):
    schema = schemathesis.openapi.from_url(f"{system.base_url}/api/openapi.json").exclude(
        path_regex=STREAMS
    )
    failures, tested, calls = [], 0, 0
    for result in schema.get_all_operations():
        operation = result.ok()
        tested += 1
        try:
            calls += fuzz(operation, system.base_url)
        except Exception as failure:  # noqa: BLE001 - collected per operation, reported together
            failures.append(f"{operation.label}: {failure}")
    assert tested >= 25 and calls >= 5 * tested
    assert failures == [], "\n\n".join(failures)
