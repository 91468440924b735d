"""schemathesis against a running `drumbeat serve`: every operation of /openapi.json, with
cases made from its schema and a valid write key, answers without a 5xx and with a body that
matches the schema of its status. Few examples per operation, so CI stays fast."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from drumbeat.api.calls import NOT_YET
from tests.api.conftest import Tenant

MAX_EXAMPLES = 15
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
REFUSED = {f"/v1/{kind}" for kind in NOT_YET}  # 501 by design, as documented
BOUNDED = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def test_every_operation_keeps_to_the_schema(server: str, tenant: Tenant) -> None:
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10  # tracking, inbox, unsubscribe, health at least
    answered: dict[str, set[int]] = {}
    for operation in operations:

        @BOUNDED
        @given(case=operation.as_strategy())
        def keeps_to_it(case: Any) -> None:
            checks = CHECKS[1:] if case.path in REFUSED else CHECKS
            reply = case.call_and_validate(auth=tenant.auth(), checks=checks, timeout=10)
            assert reply.status_code < 500 or reply.status_code == 501
            answered.setdefault(f"{case.method} {case.path}", set()).add(reply.status_code)

        keeps_to_it()
    # the key was taken: the cases reached the endpoints, not only the 401 at the door
    for label in ("GET /v1/inbox/{user_id}", "POST /v1/inbox/{user_id}/read"):
        assert 200 in answered[label], (label, answered[label])
    assert 401 not in answered["POST /v1/batch"] | answered["POST /v1/track"]
