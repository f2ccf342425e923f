"""schemathesis against the running collector and API, from the OpenAPI document it serves.

The document is loaded from the repo at collection time (one test per route; the collector's
address is only known once the fixture has started it) and the test first checks that the
running server serves exactly that document.

Valid and invalid requests are generated for every route; whatever they hold, the answer is never
a 5xx, conforms to the document (status, content type, body), and every 4xx body names a field.
A write key is given to the collector routes and a read key to the API (admin routes answer 403).
"""

from __future__ import annotations

import base64
import json
import urllib.request

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from apps.server import load_openapi

API_PREFIXES = ("/v1/identities", "/v1/profiles")

schema = schemathesis.openapi.from_dict(load_openapi())
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


def error_names_a_field(ctx: object, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every 4xx is the JSON error body naming the field (or a batch answer naming each message's)."""
    if not 400 <= response.status_code < 500:
        return
    body = response.json()
    if "error" in body:
        assert isinstance(body["error"]["field"], str) and body["error"]["field"], body
        assert isinstance(body["error"]["reason"], str) and body["error"]["reason"], body
    else:
        assert body["rejected"] and all(r["field"] and r["reason"] for r in body["rejected"]), body


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_every_4xx_names_a_field(case: schemathesis.Case, collector: str, write_key: str,
                                            read_key: str) -> None:
    served = json.loads(urllib.request.urlopen(collector + "/openapi.json", timeout=10).read())
    assert served == schema.raw_schema
    if case.path.startswith(API_PREFIXES):
        headers = {"Authorization": f"Bearer {read_key}"}
    else:
        headers = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
    response = case.call(base_url=collector, headers=headers)
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                             content_type_conformance, response_schema_conformance,
                                             error_names_a_field])
