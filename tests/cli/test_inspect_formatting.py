"""proxy-status rows, NACK lines, target resolution and the status text, from API answers."""

from __future__ import annotations

from typing import Any

import pytest

from ratline.cli.inspect_commands import (
    gateway_rows,
    instance_rows,
    nack_lines,
    proxy_status_rows,
    render_status,
    resolve_node,
)
from ratline.registry.instances import (
    InstancePort,
    ProxyKind,
    SidecarPorts,
    WorkloadInstance,
)


def type_state(state: str, version: str | None = "v7", nack: str | None = None) -> dict[str, Any]:
    return {"state": state, "sent_version": version, "acked_version": version, "nack": nack}


PROXY_STATUS = {
    "proxies": [
        {
            "node": "sidecar~127.0.0.1~reviews-v2-0.default~default.svc.cluster.local",
            "instance": "reviews-v2-0",
            "namespace": "default",
            "connected": True,
            "xds": "sotw",
            "types": {
                "CDS": type_state("SYNCED", "ac9d5f528d0715f6"),
                "EDS": type_state("SYNCED"),
                "LDS": type_state("SYNCED"),
                "RDS": type_state("STALE", "v6", nack="route: unknown cluster"),
            },
        },
        {
            "node": "router~127.0.0.1~istio-ingressgateway.istio-system"
            "~istio-system.svc.cluster.local",
            "instance": "istio-ingressgateway",
            "namespace": "istio-system",
            "connected": False,
            "xds": "delta",
            "types": {"CDS": type_state("SYNCED")},
        },
    ]
}


def instance(name: str, workload: str, namespace: str = "default") -> dict[str, Any]:
    return WorkloadInstance(
        name=name,
        namespace=namespace,
        workload=workload,
        ports=(InstancePort(9080, 41000, 41001, "http"),),
        sidecar=SidecarPorts(outbound_port=41002, admin_port=41003),
        app_pid=100,
        proxy_pid=101,
    ).to_json()


INSTANCES = [
    instance("reviews-v2-1", "reviews-v2"),
    instance("reviews-v2-0", "reviews-v2"),
    instance("ratings-v1-0", "ratings-v1"),
    instance("ratings-v1-0", "ratings-v1", namespace="other"),
]


def test_proxy_status_rows() -> None:
    assert proxy_status_rows(PROXY_STATUS) == [
        ["istio-ingressgateway.istio-system", "SYNCED", "NOT SENT", "NOT SENT", "NOT SENT",
         "disconnected", "v7"],
        ["reviews-v2-0.default", "SYNCED", "SYNCED", "SYNCED", "STALE", "sotw", "ac9d5f52/v7/v6"],
    ]  # fmt: skip


def test_nacks_are_listed() -> None:
    assert nack_lines(PROXY_STATUS) == ["NACK reviews-v2-0.default RDS: route: unknown cluster"]


def test_resolve_by_instance_name_with_or_without_namespace() -> None:
    proxies = PROXY_STATUS["proxies"]
    assert resolve_node("reviews-v2-0", proxies, INSTANCES) == proxies[0]["node"]
    assert resolve_node("istio-ingressgateway", proxies, INSTANCES) == proxies[1]["node"]
    assert (
        resolve_node("istio-ingressgateway.istio-system", proxies, INSTANCES) == proxies[1]["node"]
    )


def test_resolve_a_workload_to_its_first_instance() -> None:
    node = resolve_node("reviews-v2", [], INSTANCES)
    assert node == "sidecar~127.0.0.1~reviews-v2-0.default~default.svc.cluster.local"


def test_resolve_an_instance_not_yet_connected_from_the_instances() -> None:
    node = resolve_node("ratings-v1-0.other", [], INSTANCES)
    assert node == ProxyKind.SIDECAR.value + "~127.0.0.1~ratings-v1-0.other~other.svc.cluster.local"


def test_resolve_refuses_ambiguous_and_unknown_names() -> None:
    with pytest.raises(LookupError, match="ambiguous"):
        resolve_node("ratings-v1-0", [], INSTANCES)
    with pytest.raises(LookupError, match="ambiguous"):
        resolve_node("ratings-v1", [], INSTANCES)
    with pytest.raises(
        LookupError, match=r"proxies: istio-ingressgateway\.istio-system, reviews-v2-0\.default"
    ):
        resolve_node("nope", PROXY_STATUS["proxies"], INSTANCES)


def test_a_node_id_is_taken_as_is() -> None:
    node = "sidecar~127.0.0.1~x-0.default~default.svc.cluster.local"
    assert resolve_node(node, [], []) == node


def test_instance_rows_show_pids_ports_and_health() -> None:
    entry = {**instance("reviews-v2-0", "reviews-v2"), "healthy": False, "restarts": 2,
             "error": "app exited with 1"}  # fmt: skip
    assert instance_rows([entry]) == [
        [
            "reviews-v2-0.default",
            "100",
            "101",
            "9080→app:41000 in:41001",
            "127.0.0.1:41002",
            "41003",
            "unhealthy (app exited with 1), 2 restarts",
        ]
    ]


def test_gateway_rows_show_listen_addresses_and_state() -> None:
    rows = gateway_rows(
        [
            {"name": "istio-ingressgateway", "namespace": "istio-system", "pid": 7,
             "listen": [8080, 8443], "admin_port": 15000, "ready": True},
            {"name": "gw2", "pid": None, "listen": [], "ready": False, "restarts": 1,
             "error": "envoy exited"},
        ],
        host="127.0.0.2",
    )  # fmt: skip
    assert rows == [
        ["gw2", "-", "-", "-", "starting (envoy exited), 1 restarts"],
        ["istio-ingressgateway.istio-system", "7", "127.0.0.2:8080, 127.0.0.2:8443", "15000",
         "ready"],
    ]  # fmt: skip


def test_status_text_names_control_plane_and_instances() -> None:
    run_info = {
        "mesh_dir": "/m",
        "runner_pid": 5,
        "control_plane": {"pid": 6, "admin": "127.0.0.1:1"},
        "instances": [instance("reviews-v2-0", "reviews-v2")],
        "gateways": [{"name": "istio-ingressgateway", "pid": 8, "listen": [8080]}],
        "errors": ["Workload default/x: command not found"],
    }
    status = {"pid": 6, "xds": "127.0.0.1:2", "admin": "127.0.0.1:1", "snapshot_version": "9",
              "config_version": "3", "proxies": 1}  # fmt: skip
    text = render_status(run_info, status)
    assert text.splitlines()[:2] == [
        "Mesh: /m (runner PID 5)",
        "Control plane: PID 6, xDS 127.0.0.1:2, admin 127.0.0.1:1, snapshot 9, config 3, 1 proxies",
    ]
    assert "reviews-v2-0.default" in text
    assert "istio-ingressgateway  8    127.0.0.1:8080" in text
    assert text.endswith("Error: Workload default/x: command not found")
    assert "not answering" in render_status(run_info, None)
