"""The last start-up line: the ingress URLs from run.json (http or https per Gateway
server), `localhost` for a loopback bind."""

from __future__ import annotations

from ratline.runtime.local.startup import mesh_urls, ready_line

LABELS = {"istio": "ingressgateway", "app": "istio-ingressgateway"}


def gateway(*servers: tuple[int, str], selector: dict[str, str] | None = None) -> dict[str, object]:
    return {"spec": {"selector": selector or {"istio": "ingressgateway"},
                     "servers": [{"port": {"number": n, "protocol": p}} for n, p in servers]}}


def test_ready_line_lists_every_ingress_url() -> None:
    info = {"bind_address": "127.0.0.1", "gateways": [
        {"listen": [8080, 8443, 9000], "schemes": {"8080": "http", "8443": "https"}}]}
    assert [u.url for u in mesh_urls(info)] == ["http://localhost:8080/", "https://localhost:8443/"]
    assert ready_line(info) == "ready: ingress http://localhost:8080/, ingress https://localhost:8443/"
    info["bind_address"] = "10.1.2.3"
    assert mesh_urls(info)[0].url == "http://10.1.2.3:8080/"
    assert ready_line({"gateways": [{"listen": []}]}).startswith("ready: no ingress yet")


def test_ready_line_ends_with_the_dashboard_on_the_admin_port() -> None:
    info = {"bind_address": "127.0.0.1", "control_plane": {"admin": "127.0.0.1:41234"},
            "gateways": [{"listen": [8080], "schemes": {"8080": "http"}}]}
    assert ready_line(info) == (
        "ready: ingress http://localhost:8080/, dashboard http://localhost:41234/ui/"
    )
    info["gateways"] = []
    assert ready_line(info).endswith("; dashboard http://localhost:41234/ui/")
