"""Capture rules: the pure generation, then applied by the real iptables in a network
namespace made for the test and read back with iptables-save."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from ratline.agent.capture import (
    CaptureConfig,
    CaptureConfigError,
    capture_args,
    nat_rules,
    parse_ports,
    parse_ranges,
)


def test_default_rules_redirect_everything_but_the_proxy() -> None:
    rules = nat_rules(CaptureConfig()).splitlines()
    assert rules[0] == "*nat" and rules[-1] == "COMMIT"
    assert "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006" in rules
    assert "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in rules
    assert "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN" in rules
    assert "-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN" in rules
    for port in (15008, 15090, 15021, 15020):
        assert f"-A ISTIO_INBOUND -p tcp -m tcp --dport {port} -j RETURN" in rules
    # The catch-alls come after every exception.
    assert rules.index("-A ISTIO_OUTPUT -j ISTIO_REDIRECT") > rules.index(
        "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN"
    )
    assert rules[-3] == "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"


def test_include_ranges_and_exclusions() -> None:
    config = CaptureConfig(
        include_outbound_ranges="10.96.0.0/16,10.244.0.0/16",
        exclude_outbound_ranges=("10.96.0.10/32",),
        exclude_outbound_ports=(3306,),
        exclude_inbound_ports=(15008, 15090, 15021, 15020, 9090),
    )
    rules = nat_rules(config).splitlines()
    assert "-A ISTIO_OUTPUT -j ISTIO_REDIRECT" not in rules
    assert "-A ISTIO_OUTPUT -d 10.96.0.0/16 -j ISTIO_REDIRECT" in rules
    assert rules.index("-A ISTIO_OUTPUT -d 10.96.0.10/32 -j RETURN") < rules.index(
        "-A ISTIO_OUTPUT -d 10.96.0.0/16 -j ISTIO_REDIRECT"
    )
    assert rules[-3] == "-A ISTIO_OUTPUT -j RETURN"
    assert "-A ISTIO_OUTPUT -p tcp -m tcp --dport 3306 -j RETURN" in rules
    assert "-A ISTIO_INBOUND -p tcp -m tcp --dport 9090 -j RETURN" in rules


def test_only_some_inbound_ports_or_none() -> None:
    some = nat_rules(CaptureConfig(include_inbound_ports="9080,9443")).splitlines()
    assert "-A ISTIO_INBOUND -p tcp -m tcp --dport 9080 -j ISTIO_IN_REDIRECT" in some
    assert "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT" not in some
    none = nat_rules(CaptureConfig(include_inbound_ports="")).splitlines()
    assert not any(r.startswith("-A PREROUTING") for r in none)


def test_bad_values_are_named() -> None:
    with pytest.raises(CaptureConfigError, match="excludeOutboundPorts: 'http'"):
        parse_ports("80,http", "excludeOutboundPorts")
    with pytest.raises(CaptureConfigError, match=r"includeOutboundIPRanges: '10\.0\.0\.0/33'"):
        parse_ranges("10.0.0.0/33", "includeOutboundIPRanges")
    assert parse_ranges("10.1.2.3/8, *", "x") == ("10.0.0.0/8", "*")


def test_args_round_trip_through_the_command() -> None:
    config = CaptureConfig(exclude_outbound_ports=(3306,), exclude_outbound_ranges=("10.1.0.0/16",))
    proc = subprocess.run(
        [sys.executable, "-m", "ratline", "iptables", "--dry-run", *capture_args(config)],
        capture_output=True, text=True, check=True, timeout=60,
    )
    assert proc.stdout == nat_rules(config)


def test_applied_in_a_network_namespace_twice() -> None:
    netns = f"ratline-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", netns], check=True, timeout=30)
    try:
        args = ["ip", "netns", "exec", netns, sys.executable, "-m", "ratline", "iptables",
                "-o", "3306"]
        for _ in range(2):  # a restarted init container replaces, never doubles
            subprocess.run(args, check=True, capture_output=True, timeout=60)
        saved = subprocess.run(
            ["ip", "netns", "exec", netns, "iptables-save", "-t", "nat"],
            check=True, capture_output=True, text=True, timeout=30,
        ).stdout.splitlines()
        expected = [r for r in nat_rules(CaptureConfig(exclude_outbound_ports=(3306,)))
                    .splitlines() if r.startswith("-A")]
        assert sorted(r for r in saved if r.startswith("-A")) == sorted(expected)
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False, timeout=30)
