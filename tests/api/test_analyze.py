"""Cross-resource analysis: each analyzer finds its problem, and only that."""

from __future__ import annotations

import sys
from pathlib import Path

from ratline.api import ConfigMessage, ResourceKey, Severity, analyze, load_directory, load_text

REPO = Path(__file__).resolve().parents[2]

BASE = """\
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  ports: [{name: http, port: 9080}]
  selector: {app: reviews}
---
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata: {name: reviews-v1, labels: {app: reviews, version: v1}}
spec: {command: [PYTHON]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wiki}
spec:
  hosts: ["*.wikipedia.org"]
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
""".replace("PYTHON", sys.executable)


def run(extra: str = "", base: str = BASE, mesh_dir: Path | None = None) -> list[ConfigMessage]:
    result = load_text(base + ("---\n" + extra if extra else ""), "mesh.yaml")
    assert result.messages == [], [str(m) for m in result.messages]
    return analyze(result.resources, None, mesh_dir)


def described(messages: list[ConfigMessage]) -> list[tuple[str, str, str | None, str, str]]:
    return [(m.code, m.severity.value, m.field, str(m.resource), m.message) for m in messages]


def virtual_service(name: str, body: str) -> str:
    return (
        f"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\n"
        f"spec:\n{body}"
    )


def test_consistent_config_has_no_findings() -> None:
    vs = virtual_service(
        "reviews",
        """\
  hosts: [reviews]
  http:
  - match: [{gateways: [mesh]}]
    route:
    - {destination: {host: reviews, subset: v1}, weight: 75}
    - {destination: {host: reviews.default.svc.cluster.local, subset: v2}, weight: 25}
  - route: [{destination: {host: reviews}}]
  tls:
  - match: [{sniHosts: [en.wikipedia.org]}]
    route: [{destination: {host: en.wikipedia.org}}]
""",
    )
    assert run(vs) == []


def test_examples_bookinfo_is_clean() -> None:
    mesh_dir = REPO / "examples" / "bookinfo"
    result = load_directory(mesh_dir)
    assert [str(m) for m in analyze(result.resources, None, mesh_dir)] == []


def test_destination_host_not_found() -> None:
    vs = virtual_service(
        "ratings",
        """\
  hosts: [ratings]
  http:
  - route: [{destination: {host: ratings}}]
    mirror: {host: shadow.other}
""",
    )
    messages = run(vs)
    assert described(messages) == [
        (
            "IST0101",
            "error",
            "spec.http[0].route[0].destination.host",
            "VirtualService default/ratings",
            "host 'ratings' (ratings.default.svc.cluster.local) matches no Service or ServiceEntry",
        ),
        (
            "IST0101",
            "error",
            "spec.http[0].mirror.host",
            "VirtualService default/ratings",
            "host 'shadow.other' (shadow.other) matches no Service or "
            "ServiceEntry",
        ),
    ]
    assert (messages[0].source.file, messages[0].source.document) == ("mesh.yaml", 6)


def test_subset_not_defined() -> None:
    vs = virtual_service(
        "reviews",
        """\
  hosts: [reviews]
  tcp:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v4}, weight: 50}
""",
    )
    assert described(run(vs)) == [
        (
            "IST0101",
            "error",
            "spec.tcp[0].route[1].destination.subset",
            "VirtualService default/reviews",
            "subset 'v4' of reviews.default.svc.cluster.local is not defined by any "
            "DestinationRule",
        ),
    ]


def test_subset_of_a_destination_rule_in_another_namespace_counts() -> None:
    other = BASE.replace(
        "metadata: {name: reviews}\nspec:\n  host: reviews",
        "metadata: {name: reviews, namespace: ops}\nspec:\n"
        "  host: reviews.default.svc.cluster.local",
    )
    vs = virtual_service(
        "reviews",
        "  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews, subset: v2}}]\n",
    )
    assert run(vs, base=other) == []


def test_weights_not_adding_up_to_100() -> None:
    vs = virtual_service(
        "reviews",
        """\
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v2}, weight: 30}
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 40}
  - route:
    - {destination: {host: reviews, subset: v1}}
    - {destination: {host: reviews, subset: v2}}
""",
    )
    assert described(run(vs)) == [
        (
            "RL0101",
            "warning",
            "spec.http[0].route",
            "VirtualService default/reviews",
            "weights add up to 80, not 100 (Istio scales them to 100)",
        ),
        (
            "RL0101",
            "warning",
            "spec.http[1].route",
            "VirtualService default/reviews",
            "weights add up to 40, not 100 (Istio scales them to 100)",
        ),
        (
            "RL0101",
            "warning",
            "spec.http[2].route",
            "VirtualService default/reviews",
            "weights add up to 0, not 100 (Istio scales them to 100)",
        ),
    ]


def test_gateway_not_found() -> None:
    vs = virtual_service(
        "front",
        """\
  hosts: ["*"]
  gateways: [gw, mesh, istio-system/ingress]
  http:
  - match: [{gateways: [missing]}]
    route: [{destination: {host: reviews}}]
""",
    )
    assert described(run(vs)) == [
        (
            "IST0101",
            "error",
            "spec.gateways[2]",
            "VirtualService default/front",
            "gateway 'istio-system/ingress' (istio-system/ingress) not found",
        ),
        (
            "IST0101",
            "error",
            "spec.http[0].match[0].gateways[0]",
            "VirtualService default/front",
            "gateway 'missing' (default/missing) not found",
        ),
    ]


def test_gateway_selector_matching_no_workload() -> None:
    gateway = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress}
spec:
  selector: {istio: egressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""
    messages = run(gateway)
    assert described(messages) == [
        (
            "IST0101",
            "warning",
            "spec.selector",
            "Gateway default/egress",
            "no workload has the labels istio=egressgateway",
        ),
    ]
    assert messages[0].severity is Severity.WARNING


def test_gateway_selector_matching_a_workload() -> None:
    gateway = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: by-app}
spec:
  selector: {app: reviews}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""
    assert run(gateway) == []


def test_conflicting_virtual_services() -> None:
    first = virtual_service(
        "reviews-a", "  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews}}]\n"
    )
    second = virtual_service(
        "reviews-b",
        "  hosts: [reviews.default.svc.cluster.local]\n"
        "  http:\n  - route: [{destination: {host: reviews}}]\n",
    )
    # On a gateway Istio merges VirtualServices for one host: two there are no conflict.
    on_gateway = virtual_service(
        "reviews-c",
        "  hosts: [reviews]\n  gateways: [gw]\n  http:\n"
        "  - route: [{destination: {host: reviews}}]\n",
    )
    also_on_gateway = on_gateway.replace("reviews-c", "reviews-d")
    messages = run(first + "---\n" + second + "---\n" + on_gateway + "---\n" + also_on_gateway)
    assert described(messages) == [
        (
            "IST0109",
            "warning",
            "spec.hosts[0]",
            "VirtualService default/reviews-a",
            "host reviews.default.svc.cluster.local on the mesh gateway is also routed by "
            "VirtualService default/reviews-b; sidecars use only the oldest: merge them into one "
            "VirtualService",
        ),
        (
            "IST0109",
            "warning",
            "spec.hosts[0]",
            "VirtualService default/reviews-b",
            "host reviews.default.svc.cluster.local on the mesh gateway is also routed by "
            "VirtualService default/reviews-a; sidecars use only the oldest: merge them into one "
            "VirtualService",
        ),
    ]


def test_destination_rule_host_not_found() -> None:
    rule = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec: {host: ratings}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: wiki}
spec: {host: en.wikipedia.org}
"""
    assert described(run(rule)) == [
        (
            "IST0101",
            "warning",
            "spec.host",
            "DestinationRule default/ratings",
            "host 'ratings' (ratings.default.svc.cluster.local) matches no Service or ServiceEntry",
        ),
    ]


def test_service_selecting_no_workload() -> None:
    service = """\
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  ports: [{port: 9080}]
  selector: {app: ratings}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: other}
spec:
  ports: [{port: 9080}]
  selector: {app: reviews}
---
apiVersion: v1
kind: Service
metadata: {name: manual}
spec:
  ports: [{port: 9080}]
"""
    assert described(run(service)) == [
        (
            "RL0102",
            "warning",
            "spec.selector",
            "Service default/ratings",
            "no Workload in namespace default has the labels app=ratings",
        ),
        (
            "RL0102",
            "warning",
            "spec.selector",
            "Service other/reviews",
            "no Workload in namespace other has the labels app=reviews",
        ),
    ]


def test_service_selecting_only_a_deployment_says_local_mode_runs_workloads() -> None:
    text = """\
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  ports: [{port: 9080}]
  selector: {app: ratings}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ratings-v1}
spec:
  selector: {matchLabels: {app: ratings}}
  template:
    metadata: {labels: {app: ratings, version: v1}}
    spec: {containers: [{name: ratings, image: ratings}]}
"""
    found = [m for m in described(run(text)) if m[0] == "RL0102"]
    assert found == [
        (
            "RL0102",
            "warning",
            "spec.selector",
            "Service default/ratings",
            "no Workload in namespace default has the labels app=ratings; only the pods of "
            "Deployment ratings-v1 do, and local mode runs Workload resources, not Kubernetes "
            "workload kinds (declare a Workload, or run on Kubernetes)",
        )
    ]


def test_workload_command_not_found(tmp_path: Path) -> None:
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "run.sh").write_text("#!/bin/sh\n")
    workloads = """\
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata: {name: present}
spec: {command: [apps/run.sh]}
---
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata: {name: present-in-workdir}
spec: {command: [./run.sh], workingDir: apps}
---
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata: {name: missing-file}
spec: {command: [apps/gone.sh]}
---
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata: {name: missing-program}
spec: {command: [no-such-program-ratline-test, x]}
"""
    messages = run(workloads, mesh_dir=tmp_path)
    assert described(messages) == [
        (
            "RL0103",
            "warning",
            "spec.command[0]",
            "Workload default/missing-file",
            f"'apps/gone.sh' not found (looked for {tmp_path / 'apps' / 'gone.sh'})",
        ),
        (
            "RL0103",
            "warning",
            "spec.command[0]",
            "Workload default/missing-program",
            "'no-such-program-ratline-test' not found on PATH",
        ),
    ]
    assert messages[0].resource == ResourceKey("Workload", "default", "missing-file")
    # Without a mesh directory, relative paths cannot be checked: only PATH lookups are.
    assert [m.resource.name for m in run(workloads) if m.resource] == ["missing-program"]
