"""Istio's host naming: FQDN resolution, wildcard matching, gateway references."""

from __future__ import annotations

import pytest

from ratline.api import fqdn
from ratline.api.hosts import host_matches, hosts_overlap, resolve_gateway, split_namespaced_host


@pytest.mark.parametrize(
    ("host", "namespace", "expected"),
    [
        ("reviews", "default", "reviews.default.svc.cluster.local"),
        ("reviews", "shop", "reviews.shop.svc.cluster.local"),
        ("reviews.other", "default", "reviews.other"),
        ("httpbin.org", "default", "httpbin.org"),
        ("reviews.other.svc", "default", "reviews.other.svc"),
        ("reviews.shop.svc.cluster.local", "default", "reviews.shop.svc.cluster.local"),
        ("api.example.com", "default", "api.example.com"),
        ("*.example.com", "default", "*.example.com"),
        ("*", "default", "*"),
        ("a.svc.b", "default", "a.svc.b"),
    ],
)
def test_fqdn(host: str, namespace: str, expected: str) -> None:
    assert fqdn(host, namespace) == expected


def test_fqdn_domain_suffix() -> None:
    assert fqdn("reviews", "default", "example.internal") == "reviews.default.svc.example.internal"


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("*", "anything.example.com", True),
        ("*", "*.example.com", True),
        ("*.example.com", "api.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "api.example.org", False),
        ("*.example.com", "*.api.example.com", True),
        ("*.api.example.com", "*.example.com", False),
        ("api.example.com", "api.example.com", True),
        ("API.example.com", "api.EXAMPLE.com", True),
        ("api.example.com", "*.example.com", False),
        ("api.example.com", "web.example.com", False),
    ],
)
def test_host_matches(pattern: str, host: str, expected: bool) -> None:
    assert host_matches(pattern, host) is expected


def test_hosts_overlap_is_symmetric() -> None:
    assert hosts_overlap("*.example.com", "api.example.com")
    assert hosts_overlap("api.example.com", "*.example.com")
    assert not hosts_overlap("api.example.com", "web.example.com")


def test_split_namespaced_host() -> None:
    assert split_namespaced_host("shop/*.example.com", "default") == ("shop", "*.example.com")
    assert split_namespaced_host("./reviews", "shop") == ("shop", "reviews")
    assert split_namespaced_host("*/reviews", "shop") == ("*", "reviews")
    assert split_namespaced_host("reviews", "shop") == ("*", "reviews")


def test_resolve_gateway() -> None:
    assert resolve_gateway("mesh", "shop") == ("", "mesh")
    assert resolve_gateway("bookinfo-gateway", "shop") == ("shop", "bookinfo-gateway")
    assert resolve_gateway("istio-system/ingress", "shop") == ("istio-system", "ingress")
    assert resolve_gateway("gw.edge.svc.cluster.local", "shop") == ("edge", "gw")
