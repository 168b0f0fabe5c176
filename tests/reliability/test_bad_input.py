"""Promise 5: bad input never breaks the running mesh.

Under steady load, a series of bad changes is sent to the admin API (as `ratline apply`
does): malformed YAML, schema violations, an invalid regex, a huge document, a deeply
nested document (one deep enough to overflow libyaml's C stack), conflicting resources in
one apply, bytes that are not UTF-8, an unknown kind. Each is
refused with a clear error, the store's version does not move, the last good config
stays in effect, and no request fails.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.e2e.conftest import Mesh
from tests.helpers import http_get
from tests.reliability.conftest import admin_url, failure_stats
from tests.reliability.load import SteadyLoad

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.timeout(90)]

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

VS_HEAD = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: hello
spec:
  hosts: ["*"]
  gateways: [hello-gateway]
"""

GOOD = VS_HEAD + """\
  http:
  - route:
    - destination: {host: hello, port: {number: 8000}}
    headers: {response: {set: {x-good: "yes"}}}
"""

BAD: dict[str, bytes] = {
    "malformed YAML": b"apiVersion: networking.istio.io/v1\nkind: [VirtualService\n",
    "schema violation": (VS_HEAD + "  http:\n  - route:\n    - destination: {host: 7}\n"
                         "      weight: -3\n").encode(),
    "unknown field": (VS_HEAD + "  htp: []\n").encode(),
    "invalid regex": (VS_HEAD + "  http:\n  - match:\n    - uri: {regex: \"([a-z\"}\n"
                      "    route:\n    - destination: {host: hello}\n").encode(),
    "not UTF-8": b"kind: \xff\xfe\n",
    "deeply nested": ("a: " + "[" * 5000 + "]" * 5000 + "\n").encode(),
    "nested deep enough to crash libyaml": (
        VS_HEAD + "  http: " + "[" * 100_000 + "]" * 100_000 + "\n").encode(),
    "huge document": (VS_HEAD + "  http:\n" + "".join(
        f"  - name: r{i}\n    route:\n    - destination: {{host: hello}}\n"
        for i in range(200_000))).encode(),
    "conflicting resources": (GOOD + "---\n" + GOOD.replace('"yes"', '"no"')).encode(),
    "wrong kind": b"apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n",
}


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with NO_PROXY.open(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, {"raw": raw.decode(errors="replace")[:200]}


def version(mesh: Mesh) -> str:
    status, body, _ = http_get(admin_url(mesh, "/v1/resources"), mesh.admin_headers())
    assert status == 200
    return str(json.loads(body)["config_version"])


def test_bad_input_is_refused_and_last_good_config_kept(hello_mesh: Mesh) -> None:
    mesh = hello_mesh
    url = admin_url(mesh, "/v1/apply")
    status, body = post(url, GOOD.encode(), mesh.admin_headers())
    assert status == 200, body
    good_version = version(mesh)
    refused: dict[str, str] = {}
    with SteadyLoad(mesh.gateway_url("/"), rate=100, max_seconds=60) as load:
        time.sleep(0.5)
        for what, payload in BAD.items():
            status, body = post(url, payload, mesh.admin_headers())
            assert 400 <= status < 500, (what, status, body)
            errors = body.get("errors") or [body]
            refused[what] = json.dumps(errors)[:160]
            assert refused[what], what
            assert version(mesh) == good_version, what
        time.sleep(0.5)
    result = load.result
    print("\nbad input: " + result.summary())
    for what, message in refused.items():
        print(f"  {what}: {message}")
    assert result.failed == 0, f"{result.summary()}\n{failure_stats(mesh)}"
    _, _, headers = http_get(mesh.gateway_url("/"))
    assert headers.get("x-good") == "yes", headers
    assert all(p["connected"] and not any(t.get("nack") for t in p["types"].values())
               for p in mesh.proxy_status())
