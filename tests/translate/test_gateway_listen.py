"""Where a gateway listens for a Gateway server port: the runtime's report, else 80 → 8080."""

from __future__ import annotations

from ratline.registry.instances import ProxyKind, WorkloadInstance
from ratline.settings import Settings
from ratline.translate.routes import gateway_listen_port


def test_reported_ports_win_and_unreported_servers_are_not_bound() -> None:
    settings = Settings()
    offset = settings.gateway_port_offset
    egress = WorkloadInstance("egw-0", "istio-system", "egw", kind=ProxyKind.ROUTER,
                              gateway_listen=((80, 41000),))
    assert gateway_listen_port(80, settings, egress) == 41000
    assert gateway_listen_port(443, settings, egress) is None
    ingress = WorkloadInstance("igw-0", "istio-system", "igw", kind=ProxyKind.ROUTER)
    assert gateway_listen_port(80, settings, ingress) == 80 + offset
    assert gateway_listen_port(9443, settings, ingress) == 9443


def test_the_report_survives_json() -> None:
    egress = WorkloadInstance("egw-0", "istio-system", "egw", kind=ProxyKind.ROUTER,
                              gateway_listen=((80, 41000), (443, 41001)))
    assert WorkloadInstance.from_json(egress.to_json()) == egress
    plain = WorkloadInstance("a-0", "default", "a")
    assert WorkloadInstance.from_json(plain.to_json()).gateway_listen is None
