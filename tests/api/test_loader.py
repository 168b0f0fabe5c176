"""Loading YAML into Resources: every message names file, document, resource and field."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from ratline.api import (
    ConfigError,
    ConfigMessage,
    ResourceKey,
    Severity,
    load_directory,
    load_text,
)
from ratline.api.loader import read_keys
from ratline.api.schemas.networking import VirtualServiceSpec

GOOD_VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
    - destination: {host: reviews, subset: v2}
      weight: 20
"""


def vs(http: str, name: str = "reviews") -> str:
    """A VirtualService document whose `http:` section is `http` (YAML, indented 2)."""
    return (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        f"metadata:\n  name: {name}\nspec:\n  hosts: [reviews]\n  http:\n"
        + dedent(http).strip("\n").replace("\n", "\n  ").join(["  ", "\n"])
    )


def only(messages: list[ConfigMessage]) -> ConfigMessage:
    assert len(messages) == 1, [str(m) for m in messages]
    return messages[0]


def test_good_virtual_service_loads_with_default_namespace_and_raw() -> None:
    result = load_text(GOOD_VS, "vs.yaml")
    assert result.ok and result.messages == []
    (resource,) = result.resources
    assert resource.key == ResourceKey("VirtualService", "default", "reviews")
    assert resource.api_version == "networking.istio.io/v1"
    assert isinstance(resource.spec, VirtualServiceSpec)
    assert [d.weight for d in resource.spec.http[0].route] == [80, 20]
    assert resource.source.file == "vs.yaml" and resource.source.document == 1
    assert resource.raw["metadata"]["namespace"] == "default"
    assert resource.raw["spec"]["http"][0]["route"][0]["weight"] == 80


VS_KEY = ResourceKey("VirtualService", "default", "reviews")

BAD_VS_CASES = [
    # (http section, field, message)
    (
        "- route:\n  - destination: {host: reviews}\n    weight: 101",
        "spec.http[0].route[0].weight",
        "must be 0..100",
    ),
    (
        "- route:\n  - destination: {host: reviews}\n    weight: -1",
        "spec.http[0].route[0].weight",
        "must be 0..100",
    ),
    (
        "- route:\n  - destination: {host: reviews}\n    weight: '50'",
        "spec.http[0].route[0].weight",
        "must be an integer",
    ),
    (
        "- route:\n  - destination: {subset: v1}",
        "spec.http[0].route[0].destination.host",
        "required",
    ),
    (
        "- route:\n  - destination: {host: reviews, colour: red}",
        "spec.http[0].route[0].destination.colour",
        "unknown field",
    ),
    (
        "- route:\n  - destination: {host: reviews, port: {number: 70000}}",
        "spec.http[0].route[0].destination.port.number",
        "must be 1..65535",
    ),
    (
        "- route:\n  - destination: {host: reviews}\n  timeout: soon",
        "spec.http[0].timeout",
        "invalid duration 'soon': use e.g. 1s, 0.5s, 100ms, 1m",
    ),
    (
        "- match:\n  - uri: {exact: /a, prefix: /b}\n  route:\n  - destination: {host: reviews}",
        "spec.http[0].match[0].uri",
        "set only one of exact, prefix, regex",
    ),
    (
        "- match:\n  - headers: {end-user: {exakt: jason}}\n  route:\n"
        "  - destination: {host: reviews}",
        "spec.http[0].match[0].headers[end-user].exakt",
        "unknown field",
    ),
    (
        "- match:\n  - queryParams: {q: {regex: 7}}\n  route:\n  - destination: {host: reviews}",
        "spec.http[0].match[0].queryParams[q].regex",
        "must be a string",
    ),
    ("- name: nothing", "spec.http[0]", "set one of route, redirect, directResponse, delegate"),
    (
        "- redirect: {uri: /x}\n  directResponse: {status: 200}",
        "spec.http[0]",
        "set only one of redirect, directResponse",
    ),
    ("- directResponse: {status: 99}", "spec.http[0].directResponse.status", "must be 200..599"),
    (
        "- route:\n  - destination: {host: reviews}\n  fault: {abort: {percentage: {value: 150},"
        " httpStatus: 500}}",
        "spec.http[0].fault.abort.percentage.value",
        "must be 0..100",
    ),
    (
        "- route:\n  - destination: {host: reviews}\n  retries: {attempts: 3, perTryTimeout: 0s}",
        "spec.http[0].retries.perTryTimeout",
        "must be greater than 0",
    ),
    (
        "- route:\n  - destination: {host: reviews}\n  mirrorPercentage: {value: 101}",
        "spec.http[0].mirrorPercentage.value",
        "must be 0..100",
    ),
    (
        "- route:\n  - destination: {host: reviews}\n  corsPolicy: {unmatchedPreflights: DROP}",
        "spec.http[0].corsPolicy.unmatchedPreflights",
        "must be one of: UNSPECIFIED, FORWARD, IGNORE",
    ),
    ("- route: {destination: {host: reviews}}", "spec.http[0].route", "must be a list"),
    (
        "- route:\n  - destination: {host: reviews}\n  ignore_uri_case: true",
        "spec.http[0].ignore_uri_case",
        "unknown field",
    ),
]


@pytest.mark.parametrize(("http", "field", "message"), BAD_VS_CASES)
def test_bad_virtual_service_field(http: str, field: str, message: str) -> None:
    text = GOOD_VS + "---\n" + vs(http)
    result = load_text(text, "bookinfo/vs.yaml")
    error = only(result.messages)
    assert error.severity is Severity.ERROR
    assert error.source.file == "bookinfo/vs.yaml"
    assert error.source.document == 2
    assert error.resource == VS_KEY
    assert (error.field, error.message) == (field, message)
    assert str(error) == (
        f"bookinfo/vs.yaml: document 2, VirtualService default/reviews: {field}: {message}"
    )
    assert [r.source.document for r in result.resources] == [1]


ENVELOPE_CASES = [
    # (document, resource, field, message)
    (
        "- just\n- a list\n",
        None,
        None,
        "a document must be a mapping with apiVersion, kind, metadata and spec, not a list",
    ),
    (
        "hello\n",
        None,
        None,
        "a document must be a mapping with apiVersion, kind, metadata and spec, not a string",
    ),
    (
        "kind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n",
        ResourceKey("Service", "default", "a"),
        "apiVersion",
        "required",
    ),
    ("apiVersion: v1\nmetadata: {name: a}\nspec: {}\n", None, "kind", "required"),
    (
        "apiVersion: v1\nkind: Service\nspec: {ports: [{port: 80}]}\n",
        None,
        "metadata",
        "required",
    ),
    (
        "apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\nspec: {ports: [{port: 80}]}\n",
        None,
        "metadata.name",
        "required",
    ),
    (
        "apiVersion: v1\nkind: Service\nmetadata: {name: Reviews}\nspec: {ports: [{port: 80}]}\n",
        ResourceKey("Service", "default", "Reviews"),
        "metadata.name",
        "invalid name 'Reviews': use lowercase letters, digits and '-', starting with a letter "
        "and ending with a letter or digit",
    ),
    (
        "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: my_ns}\n"
        "spec: {ports: [{port: 80}]}\n",
        ResourceKey("Service", "my_ns", "a"),
        "metadata.namespace",
        "invalid name 'my_ns': use lowercase letters, digits and '-', starting and ending with "
        "a letter or digit",
    ),
    (
        "apiVersion: v1\nkind: Service\nmetadata: {name: a, labels: {version: 1}}\n"
        "spec: {ports: [{port: 80}]}\n",
        ResourceKey("Service", "default", "a"),
        "metadata.labels[version]",
        "must be a string (quote it)",
    ),
    (
        "apiVersion: v1\nkind: Service\nmetadata: {name: a, uid: x, owner: me}\n"
        "spec: {ports: [{port: 80}]}\n",
        ResourceKey("Service", "default", "a"),
        "metadata.owner",
        "unknown field",
    ),
    (
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n"
        "extra: 1\n",
        ResourceKey("Service", "default", "a"),
        "extra",
        "unknown field",
    ),
    (
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n",
        ResourceKey("Service", "default", "a"),
        "spec",
        "required",
    ),
    (
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: [1]\n",
        ResourceKey("Service", "default", "a"),
        "spec",
        "must be a mapping",
    ),
    (
        "apiVersion: example.com/v1\nkind: Frobnicator\nmetadata: {name: a}\nspec: {}\n",
        ResourceKey("Frobnicator", "default", "a"),
        "kind",
        "unknown kind 'Frobnicator'; accepted kinds: AuthorizationPolicy, DestinationRule, "
        "Gateway, Namespace, PeerAuthentication, RequestAuthentication, Secret, Service, "
        "ServiceAccount, ServiceEntry, Sidecar, Telemetry, VirtualService, Workload, WorkloadEntry",
    ),
    (
        "apiVersion: networking.istio.io/v2\nkind: Gateway\nmetadata: {name: a}\nspec: {}\n",
        ResourceKey("Gateway", "default", "a"),
        "apiVersion",
        "apiVersion 'networking.istio.io/v2' is not accepted for Gateway; use "
        "networking.istio.io/v1 or networking.istio.io/v1beta1 or networking.istio.io/v1alpha3",
    ),
    (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\nspec: {}\n",
        ResourceKey("Namespace", "", "team-a"),
        "spec",
        "unknown field",
    ),
    (
        "apiVersion: ratline.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\n"
        "spec: {command: []}\n",
        ResourceKey("Workload", "default", "a"),
        "spec.command",
        "must have at least 1 item",
    ),
    (
        "apiVersion: ratline.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\n"
        "spec: {command: [x], replicas: -1}\n",
        ResourceKey("Workload", "default", "a"),
        "spec.replicas",
        "must be 0 or more",
    ),
    (
        "apiVersion: ratline.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\n"
        "spec: {command: [x], env: {DEBUG: true}}\n",
        ResourceKey("Workload", "default", "a"),
        "spec.env[DEBUG]",
        "must be a string",
    ),
    (
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"
        "spec: {ports: [{port: 80, targetPort: 1.5}]}\n",
        ResourceKey("Service", "default", "a"),
        "spec.ports[0].targetPort",
        "must be an integer or a string",
    ),
    (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\n"
        "spec: {host: a, trafficPolicy: {loadBalancer: {simple: FASTEST}}}\n",
        ResourceKey("DestinationRule", "default", "a"),
        "spec.trafficPolicy.loadBalancer.simple",
        "must be one of: UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST",
    ),
    (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\n"
        "spec: {host: a, subsets: [{name: v1}, {name: v1}]}\n",
        ResourceKey("DestinationRule", "default", "a"),
        "spec",
        "duplicate subset name v1",
    ),
    (
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: a}\n"
        "spec: {servers: [{port: {number: 80, name: http, protocol: SMTP}, hosts: ['*']}]}\n",
        ResourceKey("Gateway", "default", "a"),
        "spec.servers[0].port.protocol",
        "must be one of: HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, HTTP_PROXY, MONGO, REDIS, MYSQL, TCP, "
        "TLS, UDP",
    ),
    (
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"
        "spec: {action: CUSTOM}\n",
        ResourceKey("AuthorizationPolicy", "default", "a"),
        "spec",
        "action CUSTOM needs a provider",
    ),
]


@pytest.mark.parametrize(("document", "resource", "field", "message"), ENVELOPE_CASES)
def test_bad_document(
    document: str, resource: ResourceKey | None, field: str | None, message: str
) -> None:
    result = load_text("---\n" + GOOD_VS + "---\n" + document, "f.yaml")
    error = only(result.messages)
    assert (error.source.file, error.source.document) == ("f.yaml", 2)
    assert (error.resource, error.field, error.message) == (resource, field, message)
    assert len(result.resources) == 1


def test_every_error_of_every_document_is_reported() -> None:
    text = (
        vs("- route:\n  - destination: {host: a}\n    weight: 500", name="one")
        + "---\n"
        + GOOD_VS
        + "---\n"
        + vs("- route:\n  - destination: {}\n  timeout: x", name="three")
    )
    result = load_text(text, "v.yaml")
    found = sorted(
        (m.source.document, m.resource.name if m.resource else "", m.field) for m in result.messages
    )
    assert found == [
        (1, "one", "spec.http[0].route[0].weight"),
        (3, "three", "spec.http[0].route[0].destination.host"),
        (3, "three", "spec.http[0].timeout"),
    ]
    assert [r.name for r in result.resources] == ["reviews"]
    with pytest.raises(ConfigError) as raised:
        result.raise_for_errors()
    assert len(raised.value.errors) == 3


def test_malformed_yaml_names_file_document_and_line_and_other_documents_still_load() -> None:
    text = GOOD_VS + "---\napiVersion: v1\nkind: [Service\nmetadata: {name: x}\n---\n" + GOOD_VS
    result = load_text(text.replace("name: reviews", "name: r2", 1), "bad.yaml")
    error = only(result.messages)
    assert (error.source.file, error.source.document, error.resource) == ("bad.yaml", 2, None)
    # The line is counted from the start of the file, as PyYAML would count it.
    assert error.message == "invalid YAML at line 16: did not find expected ',' or ']'"
    assert text.splitlines()[15] == "metadata: {name: x}"
    assert sorted(r.name for r in result.resources) == ["r2", "reviews"]


def test_yaml_error_line_counts_from_the_start_of_the_file() -> None:
    text = "# comment\n" + GOOD_VS + "---\na: b: c\n"
    error = only(load_text(text, "x.yaml").messages)
    assert error.source.document == 2
    assert error.message.startswith(f"invalid YAML at line {len(GOOD_VS.splitlines()) + 3}: ")


def test_empty_documents_are_skipped_but_counted() -> None:
    text = "# header only\n---\n---\n# nothing\n---\n" + GOOD_VS.replace("name: reviews", "name: x")
    result = load_text(text + "---\n" + "apiVersion: v1\n", "e.yaml")
    assert [r.source.document for r in result.resources] == [3]
    assert [(m.source.document, m.field) for m in result.messages] == [
        (4, "kind"),
        (4, "metadata"),
    ]


def test_empty_text_loads_nothing() -> None:
    assert load_text("", None).resources == [] and load_text("\n# x\n").messages == []


def test_duplicates_in_one_text_name_both_places() -> None:
    result = load_text(GOOD_VS + "---\n" + GOOD_VS, "d.yaml")
    error = only(result.messages)
    assert error.source.document == 2 and error.resource == VS_KEY
    assert error.message == "duplicate resource: also defined at d.yaml: document 1"
    assert len(result.resources) == 1


def test_same_name_in_other_namespace_or_kind_is_not_a_duplicate() -> None:
    other_ns = GOOD_VS.replace("name: reviews", "name: reviews\n  namespace: team")
    service = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec: {ports: [{port: 1}]}"
    result = load_text(GOOD_VS + "---\n" + other_ns + "---\n" + service)
    assert result.messages == [] and len(result.resources) == 3


@pytest.mark.parametrize(
    ("kind", "versions", "spec"),
    [
        (
            "VirtualService",
            [
                "networking.istio.io/v1",
                "networking.istio.io/v1beta1",
                "networking.istio.io/v1alpha3",
            ],
            "{hosts: [a], http: []}",
        ),
        (
            "DestinationRule",
            [
                "networking.istio.io/v1",
                "networking.istio.io/v1beta1",
                "networking.istio.io/v1alpha3",
            ],
            "{host: a}",
        ),
        (
            "Gateway",
            [
                "networking.istio.io/v1",
                "networking.istio.io/v1beta1",
                "networking.istio.io/v1alpha3",
            ],
            "{servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}",
        ),
        (
            "ServiceEntry",
            [
                "networking.istio.io/v1",
                "networking.istio.io/v1beta1",
                "networking.istio.io/v1alpha3",
            ],
            "{hosts: [example.com]}",
        ),
        (
            "WorkloadEntry",
            [
                "networking.istio.io/v1",
                "networking.istio.io/v1beta1",
                "networking.istio.io/v1alpha3",
            ],
            "{address: 10.0.0.1}",
        ),
        (
            "Sidecar",
            [
                "networking.istio.io/v1",
                "networking.istio.io/v1beta1",
                "networking.istio.io/v1alpha3",
            ],
            "{egress: [{hosts: ['./*']}]}",
        ),
        (
            "PeerAuthentication",
            ["security.istio.io/v1", "security.istio.io/v1beta1"],
            "{mtls: {mode: STRICT}}",
        ),
        ("AuthorizationPolicy", ["security.istio.io/v1", "security.istio.io/v1beta1"], "{}"),
        (
            "RequestAuthentication",
            ["security.istio.io/v1", "security.istio.io/v1beta1"],
            "{jwtRules: [{issuer: me}]}",
        ),
        ("Service", ["v1"], "{ports: [{port: 80}]}"),
        ("Workload", ["ratline.dev/v1alpha1"], "{command: [python3]}"),
    ],
)
def test_every_accepted_api_version(kind: str, versions: list[str], spec: str) -> None:
    for version in versions:
        text = f"apiVersion: {version}\nkind: {kind}\nmetadata: {{name: a}}\nspec: {spec}\n"
        result = load_text(text)
        assert result.messages == [], (version, [str(m) for m in result.messages])
        assert result.resources[0].api_version == version
    wrong = f"apiVersion: example.com/v1\nkind: {kind}\nmetadata: {{name: a}}\nspec: {spec}\n"
    assert only(load_text(wrong).messages).field == "apiVersion"


def test_kinds_without_spec() -> None:
    text = (
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: bookinfo-details}\n"
        "automountServiceAccountToken: false\n---\n"
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a, namespace: ignored}\n"
    )
    result = load_text(text)
    assert result.messages == []
    assert [r.key for r in result.resources] == [
        ResourceKey("ServiceAccount", "default", "bookinfo-details"),
        ResourceKey("Namespace", "", "team-a"),
    ]


def test_read_keys_reads_only_identity() -> None:
    keys, messages = read_keys(GOOD_VS.replace("weight: 80", "weight: 800") + "---\n- x\n", "k")
    assert keys == [VS_KEY]
    assert only(messages).source.document == 2


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_load_directory_reads_yaml_recursively_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", GOOD_VS.replace("name: reviews", "name: b"))
    write(tmp_path / "a" / "z.yml", GOOD_VS.replace("name: reviews", "name: az"))
    write(tmp_path / "a.yaml", GOOD_VS.replace("name: reviews", "name: a"))
    write(tmp_path / "mesh.yaml", "trustDomain: example.org\n")
    write(tmp_path / ".ratline" / "applied" / "x.yaml", "not: [valid")
    write(tmp_path / ".hidden" / "x.yaml", "not: [valid")
    write(tmp_path / ".swap.yaml", "not: [valid")
    write(tmp_path / "notes.txt", "not: [valid")
    write(tmp_path / "apps" / "app.py", "print('hi')")
    result = load_directory(tmp_path)
    assert result.messages == []
    # Sorted by path components: a folder's files come before a sibling `a.yaml`.
    assert [r.name for r in result.resources] == ["az", "a", "b"]
    assert result.resources[0].source.file == str(tmp_path / "a" / "z.yml")


def test_load_directory_reports_duplicates_across_files(tmp_path: Path) -> None:
    write(tmp_path / "one.yaml", GOOD_VS)
    write(tmp_path / "two.yaml", "# again\n---\n" + GOOD_VS)
    error = only(load_directory(tmp_path).messages)
    assert (error.source.file, error.source.document) == (str(tmp_path / "two.yaml"), 1)
    assert (
        error.message == f"duplicate resource: also defined at {tmp_path / 'one.yaml'}: document 1"
    )


def test_load_directory_reports_unreadable_and_missing(tmp_path: Path) -> None:
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00bad")
    error = only(load_directory(tmp_path).messages)
    assert error.source.file == str(tmp_path / "bin.yaml")
    assert error.message.startswith("cannot read file")
    missing = only(load_directory(tmp_path / "nope").messages)
    assert missing.message.startswith("not a directory")


def test_examples_bookinfo_loads_cleanly() -> None:
    result = load_directory(Path(__file__).resolve().parents[2] / "examples" / "bookinfo")
    assert result.messages == []
    kinds = {r.kind for r in result.resources}
    assert {"Service", "Workload", "Gateway", "VirtualService", "DestinationRule"} <= kinds


def test_duplicate_yaml_keys_are_errors() -> None:
    text = (
        GOOD_VS + "---\n" + GOOD_VS.replace("  hosts: [reviews]\n", "  hosts: [a]\n  hosts: [b]\n")
    )
    error = only(load_text(text, "dup.yaml").messages)
    assert error.source.document == 2
    assert error.message == "invalid YAML at line 20: duplicate key 'hosts'"
    assert text.splitlines()[19] == "  hosts: [b]"


def test_yaml_merge_keys_still_work() -> None:
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {<<: {name: b}, labels: {x: y}}\n"
    assert [r.name for r in load_text(text).resources] == ["b"]
