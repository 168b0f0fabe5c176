"""ServiceEntry: Istio's validation of resolution against hosts and endpoints; the
model keeps subjectAltNames and addresses, which translation uses."""

from __future__ import annotations

import pytest

from ratline.api.loader import load_text
from ratline.model.services import build_services
from ratline.model.snapshot import Service
from ratline.translate.routes import service_domains
from ratline.translate.tls import service_identities

BASE = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: se}}
spec:
  hosts: [{hosts}]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: {resolution}
{extra}"""


def entry(hosts: str = "api.example.com", resolution: str = "DNS", extra: str = "") -> str:
    return BASE.format(hosts=hosts, resolution=resolution, extra=extra)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (entry('"*.example.com"'), "wildcard host *.example.com needs endpoints"),
        (entry('"*.example.com"', "DNS_ROUND_ROBIN"), "needs endpoints"),
        (entry(resolution="DNS_ROUND_ROBIN",
               extra="  endpoints: [{address: a.example.com}, {address: b.example.com}]\n"),
         "at most one endpoint"),
    ],
)
def test_refused_as_istio_refuses_it(text: str, fragment: str) -> None:
    result = load_text(text, "se.yaml")
    assert not result.ok
    assert any(fragment in str(m) for m in result.messages), [str(m) for m in result.messages]
    assert any("se.yaml" in str(m) and "ServiceEntry" in str(m) for m in result.messages)


def test_wildcards_are_fine_with_none_or_with_endpoints() -> None:
    assert load_text(entry('"*.example.com"', "NONE"), "se.yaml").ok
    assert load_text(entry('"*.example.com"', extra="  endpoints: [{address: lb.example.com}]\n"),
                     "se.yaml").ok


def _service(text: str) -> Service:
    result = load_text(text, "se.yaml")
    assert result.ok, [str(m) for m in result.messages]
    return next(iter(build_services(result.resources, []).values()))


def test_subject_alt_names_replace_the_sidecars_identities() -> None:
    service = _service(entry(resolution="STATIC", extra=(
        "  location: MESH_INTERNAL\n"
        "  subjectAltNames: [spiffe://cluster.local/ns/vm/sa/legacy]\n"
        "  endpoints: [{address: 127.0.0.1}]\n")))
    assert service.subject_alt_names == ("spiffe://cluster.local/ns/vm/sa/legacy",)
    assert service_identities(None, service) == [  # type: ignore[arg-type]
        "spiffe://cluster.local/ns/vm/sa/legacy"
    ]


def test_single_addresses_are_domains_ranges_are_not() -> None:
    service = _service(entry(resolution="STATIC", extra=(
        "  addresses: [240.0.0.7, 240.0.1.0/24, 240.0.2.9/32]\n"
        "  endpoints: [{address: 127.0.0.1}]\n")))
    domains = service_domains(service, 80, "default")
    assert "240.0.0.7" in domains and "240.0.0.7:80" in domains
    assert "240.0.2.9" in domains
    assert not any("240.0.1" in d for d in domains)
