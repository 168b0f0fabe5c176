"""Chart selectors as PromQL and as edge filters; outlier ejections read from Envoy's
`/clusters?format=json`."""

from __future__ import annotations

from ratline.dashboard.outliers import ejected_hosts
from ratline.dashboard.selector import Selector


def test_selector_matches_keys_and_writes_escaped_promql() -> None:
    sel = Selector.workload_inbound("default", 'we"ird')
    assert sel.promql() == (
        'destination_workload="we\\"ird",destination_workload_namespace="default"'
    )
    assert sel.matches(("a", "b", "svc", 'we"ird', "default"))
    assert not sel.matches(("a", "b", "svc", 'we"ird', "other"))
    assert Selector().promql() == "" and Selector().matches(("", "", "", "", ""))


def test_ejected_hosts_are_those_failing_the_outlier_check_of_the_service() -> None:
    def host(port: int, ejected: bool) -> dict[str, object]:
        return {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "health_status": {"eds_health_status": "HEALTHY",
                                  **({"failed_outlier_check": True} if ejected else {})}}

    clusters = {"cluster_statuses": [
        {"name": "outbound|9080|v1|reviews.default.svc.cluster.local",
         "host_statuses": [host(1001, True), host(1002, False)]},
        {"name": "outbound|9080||reviews.default.svc.cluster.local",
         "host_statuses": [host(1001, True), host(1003, True)]},
        {"name": "outbound|9080||ratings.default.svc.cluster.local",
         "host_statuses": [host(2001, True)]},
    ]}
    found = ejected_hosts(clusters, "reviews.default.svc.cluster.local")
    assert sorted(set(found)) == ["127.0.0.1:1001", "127.0.0.1:1003"]
