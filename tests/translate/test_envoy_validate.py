"""Real Envoy accepts what translation produces (`envoy --mode validate`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratline.settings import Settings
from ratline.translate.generator import MeshGenerator, ProxyResources
from tests.translate import mesh
from tests.translate.static_config import validate, write_bootstrap

ENVOY = Settings.from_env().envoy


@pytest.mark.parametrize("instance", ["reviews-v1-0", "echo-v1-0", "istio-ingressgateway-0"])
def test_envoy_validates_every_proxys_config(tmp_path: Path, instance: str) -> None:
    generator = MeshGenerator(mesh.snapshot(), Settings.from_env())
    resources = generator.protos_for(mesh.node(instance))
    assert resources is not None and resources.listeners and resources.routes
    result = validate(ENVOY, write_bootstrap(tmp_path / "envoy.json", resources))
    assert result.returncode == 0, result.stdout + result.stderr
    assert " OK" in result.stdout


def test_validation_catches_a_route_to_a_missing_cluster(tmp_path: Path) -> None:
    generator = MeshGenerator(mesh.snapshot(), Settings.from_env())
    resources = generator.protos_for(mesh.node("reviews-v1-0"))
    assert resources is not None
    missing = "outbound|9080|v2|reviews.default.svc.cluster.local"
    broken = ProxyResources(
        own_clusters=tuple(c for c in resources.clusters if c.name != missing),
        own_endpoints=resources.endpoints,
        listeners=resources.listeners,
        routes=resources.routes,
    )
    result = validate(ENVOY, write_bootstrap(tmp_path / "envoy.json", broken))
    assert result.returncode != 0
    assert missing in result.stdout + result.stderr


@pytest.mark.parametrize("instance", ["productpage-v1-0", "istio-ingressgateway-0"])
def test_envoy_validates_every_supported_traffic_field(tmp_path: Path, instance: str) -> None:
    """The fixture that sets every supported VirtualService/DestinationRule field (see
    tests/api/test_traffic_support.py) translates to config Envoy accepts (mTLS off; the
    file-based DR tls certificates of the fixture do not exist here; the gateway's are
    made)."""
    from tests.api.test_traffic_support import SUPPORTED
    from tests.translate.test_gateway_tls import _pem

    config = SUPPORTED.replace(
        "      tls:\n        mode: MUTUAL", "      tls:\n        mode: DISABLE"
    )
    cert, key = _pem("reviews.example")  # the gateway's files must exist for Envoy
    for name, text in (("cert.pem", cert), ("key.pem", key), ("ca.pem", cert)):
        (tmp_path / name).write_text(text)
        config = config.replace(f": /{name}", f": {tmp_path / name}")
    generator = MeshGenerator(mesh.snapshot(config), Settings.from_env())
    resources = generator.protos_for(mesh.node(instance))
    assert resources is not None
    result = validate(ENVOY, write_bootstrap(tmp_path / "envoy.json", resources))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
