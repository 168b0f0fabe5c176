"""Unit tests of the sans-IO ADS stream state (no gRPC)."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2

from ratline.xds.cache import group_by_type, pack, set_version
from ratline.xds.delta import DeltaStream
from ratline.xds.protocol import DeltaRequest, SotwRequest, SyncState, nack_retry_delay
from ratline.xds.resource_set import ResourceSet
from ratline.xds.sotw import SotwStream
from ratline.xds.types import CLUSTER, ENDPOINT, LISTENER, ROUTE, Resources, VersionedResource


def cluster(name: str, timeout_s: int = 1) -> VersionedResource:
    message = cluster_pb2.Cluster(name=name)
    message.connect_timeout.seconds = timeout_s
    return pack(message)


def assignment(name: str) -> VersionedResource:
    return pack(endpoint_pb2.ClusterLoadAssignment(cluster_name=name))


def route(name: str) -> VersionedResource:
    return pack(route_pb2.RouteConfiguration(name=name))


def assignment_with_priority(name: str) -> VersionedResource:
    endpoints = [endpoint_components_pb2.LocalityLbEndpoints(priority=1)]
    return pack(endpoint_pb2.ClusterLoadAssignment(cluster_name=name, endpoints=endpoints))


def route_with_host(name: str) -> VersionedResource:
    hosts = [route_components_pb2.VirtualHost(name="v", domains=["*"])]
    return pack(route_pb2.RouteConfiguration(name=name, virtual_hosts=hosts))


def config(*resources: VersionedResource) -> Resources:
    return group_by_type(resources)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


# --- cache helpers --------------------------------------------------------------------


def test_pack_versions_by_content() -> None:
    assert cluster("a").version == cluster("a").version
    assert cluster("a").version != cluster("a", timeout_s=2).version
    assert cluster("a").body.type_url == CLUSTER
    assert assignment("a").name == "a"
    assert assignment("a").body.type_url == ENDPOINT


def test_set_version_ignores_order() -> None:
    assert set_version({"a": "1", "b": "2"}) == set_version({"b": "2", "a": "1"})
    assert set_version({"a": "1"}) != set_version({"a": "2"})


# --- state of the world ---------------------------------------------------------------


def sotw_initial(stream: SotwStream, type_url: str, *names: str) -> list:
    return stream.handle_request(SotwRequest(type_url, resource_names=names)).responses


def test_sotw_wildcard_cds_gets_everything_and_ack_syncs() -> None:
    stream = SotwStream(clock=FakeClock())
    stream.set_resources(config(cluster("a"), cluster("b")))
    [response] = sotw_initial(stream, CLUSTER)
    assert [r.name for r in response.resources] == ["a", "b"]
    assert stream.status()[CLUSTER].state is SyncState.STALE

    ack = SotwRequest(CLUSTER, version_info=response.version, response_nonce=response.nonce)
    handled = stream.handle_request(ack)
    assert handled.responses == [] and handled.nack is None
    status = stream.status()[CLUSTER]
    assert status.state is SyncState.SYNCED
    assert status.acked_version == status.sent_version == response.version
    assert status.last_ack_at is not None


def test_sotw_named_types_get_only_requested_names() -> None:
    stream = SotwStream()
    stream.set_resources(config(assignment("a"), assignment("b"), route("r1"), route("r2")))
    [eds] = sotw_initial(stream, ENDPOINT, "b", "missing")
    assert [r.name for r in eds.resources] == ["b"]
    [rds] = sotw_initial(stream, ROUTE, "r1")
    assert [r.name for r in rds.resources] == ["r1"]


def test_sotw_initial_request_answered_even_when_empty() -> None:
    stream = SotwStream()
    stream.set_resources({})
    [response] = sotw_initial(stream, LISTENER)
    assert response.resources == ()


def test_sotw_unknown_node_waits_then_sends_on_config() -> None:
    stream = SotwStream()
    stream.set_resources(None)
    assert sotw_initial(stream, CLUSTER) == []
    assert stream.status()[CLUSTER].state is SyncState.NOT_SENT
    [response] = stream.set_resources(config(cluster("a")))
    assert [r.name for r in response.resources] == ["a"]


def test_sotw_nack_recorded_and_resent_on_the_next_push() -> None:
    stream = SotwStream()
    stream.set_resources(config(cluster("a")))
    [first] = sotw_initial(stream, CLUSTER)
    stream.handle_request(SotwRequest(CLUSTER, first.version, first.nonce))
    [bad] = stream.set_resources(config(cluster("a"), cluster("bad")))

    nack = SotwRequest(CLUSTER, first.version, bad.nonce, error_detail="bad cluster")
    handled = stream.handle_request(nack)
    assert handled.responses == []
    assert handled.nack is not None and handled.nack.message == "bad cluster"
    assert handled.nack.rejected_version == bad.version
    status = stream.status()[CLUSTER]
    assert status.state is SyncState.STALE
    assert status.acked_version == first.version
    assert status.nack is not None and status.nack.message == "bad cluster"

    # The next push resends it unchanged (its cause may be gone), as Istio does.
    [again] = stream.set_resources(config(cluster("a"), cluster("bad")))
    assert again.version == bad.version and again.nonce != bad.nonce
    assert [r.name for r in again.resources] == ["a", "bad"]
    stream.handle_request(SotwRequest(CLUSTER, first.version, again.nonce, error_detail="still"))

    # Fixed: sent, and the ACK clears the NACK.
    [fixed] = stream.set_resources(config(cluster("a"), cluster("bad", timeout_s=3)))
    assert fixed.version != bad.version
    stream.handle_request(SotwRequest(CLUSTER, fixed.version, fixed.nonce))
    status = stream.status()[CLUSTER]
    assert status.state is SyncState.SYNCED and status.nack is None


def test_sotw_stale_nonce_ignored() -> None:
    stream = SotwStream()
    stream.set_resources(config(assignment("a"), assignment("b")))
    [first] = sotw_initial(stream, ENDPOINT, "a")
    [second] = stream.set_resources(config(assignment_with_priority("a"), assignment("b")))
    assert second.nonce != first.nonce
    # An ACK of the superseded nonce, even with other names, is ignored.
    stale = SotwRequest(ENDPOINT, first.version, first.nonce, resource_names=("a", "b"))
    handled = stream.handle_request(stale)
    assert handled.stale and handled.responses == []
    assert stream.status()[ENDPOINT].state is SyncState.STALE
    assert stream.status()[ENDPOINT].sent_version == second.version


def test_sotw_subscription_change_sends_what_is_new() -> None:
    stream = SotwStream()
    stream.set_resources(config(assignment("a"), assignment("b")))
    [first] = sotw_initial(stream, ENDPOINT, "a")
    ack_and_more = SotwRequest(ENDPOINT, first.version, first.nonce, resource_names=("a", "b"))
    [second] = stream.handle_request(ack_and_more).responses
    # EDS is not a wildcard type: Envoy keeps `a`, so only `b` needs to travel.
    assert [r.name for r in second.resources] == ["b"]
    assert second.version != first.version
    # Acking it with the same names: nothing more.
    ack = SotwRequest(ENDPOINT, second.version, second.nonce, resource_names=("a", "b"))
    assert stream.handle_request(ack).responses == []
    assert stream.status()[ENDPOINT].state is SyncState.SYNCED


def test_sotw_unchanged_config_sends_nothing_and_push_order() -> None:
    stream = SotwStream()
    resources = config(cluster("a"), assignment("a"), route("r"))
    stream.set_resources(resources)
    sotw_initial(stream, ROUTE, "r")
    sotw_initial(stream, CLUSTER)
    sotw_initial(stream, ENDPOINT, "a")
    assert stream.set_resources(resources) == []
    changed = config(cluster("a", 5), assignment("a"), route_with_host("r"))
    responses = stream.set_resources(changed)
    # Changed clusters warm on their endpoints: EDS is resent with them, unchanged or not.
    assert [r.type_url for r in responses] == [CLUSTER, ENDPOINT, ROUTE]
    only_route = config(cluster("a", 5), assignment("a"), route("r"))
    assert [r.type_url for r in stream.set_resources(only_route)] == [ROUTE]


def test_delta_changed_cluster_gets_its_endpoints_again() -> None:
    stream = DeltaStream()
    stream.set_resources(config(cluster("a"), cluster("b"), assignment("a"), assignment("b")))
    delta_ack(stream, stream.handle_request(DeltaRequest(CLUSTER)).responses[0])
    eds_request = DeltaRequest(ENDPOINT, subscribe=("a", "b"))
    delta_ack(stream, stream.handle_request(eds_request).responses[0])
    responses = stream.set_resources(
        config(cluster("a", 7), cluster("b"), assignment("a"), assignment("b"))
    )
    assert [(r.type_url, [x.name for x in r.resources]) for r in responses] == [
        (CLUSTER, ["a"]),
        (ENDPOINT, ["a"]),
    ]


def test_sotw_reconnect_with_version_is_answered() -> None:
    stream = SotwStream()
    stream.set_resources(config(cluster("a")))
    request = SotwRequest(CLUSTER, version_info="previous-version")
    [response] = stream.handle_request(request).responses
    assert [r.name for r in response.resources] == ["a"]


# --- delta ----------------------------------------------------------------------------


def delta_ack(stream: DeltaStream, response, error: str | None = None):  # type: ignore[no-untyped-def]
    return stream.handle_request(
        DeltaRequest(response.type_url, response_nonce=response.nonce, error_detail=error)
    )


def test_delta_wildcard_add_update_remove() -> None:
    stream = DeltaStream()
    stream.set_resources(config(cluster("a"), cluster("b")))
    [first] = stream.handle_request(DeltaRequest(CLUSTER)).responses
    assert [r.name for r in first.resources] == ["a", "b"] and first.removed == ()
    delta_ack(stream, first)
    assert stream.status()[CLUSTER].state is SyncState.SYNCED

    # Update b, add c, remove a: only the changes travel.
    [second] = stream.set_resources(config(cluster("b", 9), cluster("c")))
    assert [r.name for r in second.resources] == ["b", "c"]
    assert second.removed == ("a",)
    assert stream.status()[CLUSTER].state is SyncState.STALE
    delta_ack(stream, second)
    status = stream.status()[CLUSTER]
    assert status.state is SyncState.SYNCED
    assert status.acked_version == second.system_version
    assert stream.known(CLUSTER) == {"b": cluster("b", 9).version, "c": cluster("c").version}

    assert stream.set_resources(config(cluster("b", 9), cluster("c"))) == []


def test_delta_system_version_matches_sotw_version() -> None:
    resources = config(cluster("a"), cluster("b"))
    delta, sotw = DeltaStream(), SotwStream()
    delta.set_resources(resources)
    sotw.set_resources(resources)
    [d] = delta.handle_request(DeltaRequest(CLUSTER)).responses
    [s] = sotw.handle_request(SotwRequest(CLUSTER)).responses
    assert d.system_version == s.version


def test_delta_explicit_subscribe_and_unsubscribe() -> None:
    stream = DeltaStream()
    stream.set_resources(config(assignment("a"), assignment("b")))
    [first] = stream.handle_request(DeltaRequest(ENDPOINT, subscribe=("a",))).responses
    assert [r.name for r in first.resources] == ["a"]
    delta_ack(stream, first)
    [second] = stream.handle_request(DeltaRequest(ENDPOINT, subscribe=("b",))).responses
    assert [r.name for r in second.resources] == ["b"]
    delta_ack(stream, second)
    stream.handle_request(DeltaRequest(ENDPOINT, unsubscribe=("a",)))
    assert set(stream.known(ENDPOINT)) == {"b"}
    # a changes: the client no longer wants it, nothing is sent.
    changed = config(assignment_with_priority("a"), assignment("b"))
    assert stream.set_resources(changed) == []


def test_delta_initial_resource_versions_skip_what_client_has() -> None:
    stream = DeltaStream()
    a, b = cluster("a"), cluster("b")
    stream.set_resources(config(a, b))
    request = DeltaRequest(CLUSTER, initial_resource_versions={"a": a.version, "gone": "x1"})
    [response] = stream.handle_request(request).responses
    assert [r.name for r in response.resources] == ["b"]
    assert response.removed == ("gone",)


def test_delta_reconnect_with_everything_current_gets_empty_answer() -> None:
    stream = DeltaStream()
    a = cluster("a")
    stream.set_resources(config(a))
    request = DeltaRequest(CLUSTER, initial_resource_versions={"a": a.version})
    [response] = stream.handle_request(request).responses
    assert response.resources == () and response.removed == ()


def test_delta_nack_forgets_rejected_then_fix() -> None:
    stream = DeltaStream()
    stream.set_resources(config(cluster("a")))
    [first] = stream.handle_request(DeltaRequest(CLUSTER)).responses
    delta_ack(stream, first)
    [bad] = stream.set_resources(config(cluster("a"), cluster("bad")))
    handled = delta_ack(stream, bad, error="no good")
    assert handled.responses == []
    assert handled.nack is not None and handled.nack.rejected_version == bad.system_version
    assert "bad" not in stream.known(CLUSTER)
    status = stream.status()[CLUSTER]
    assert status.state is SyncState.STALE and status.nack is not None
    assert status.acked_version == first.system_version

    # The fix is sent (the rejected resource is not known to the client).
    [fixed] = stream.set_resources(config(cluster("a"), cluster("bad", 7)))
    assert [r.name for r in fixed.resources] == ["bad"]
    delta_ack(stream, fixed)
    status = stream.status()[CLUSTER]
    assert status.state is SyncState.SYNCED and status.nack is None


def test_delta_nack_rejected_resources_resent_with_next_change() -> None:
    stream = DeltaStream()
    stream.set_resources(config(cluster("a")))
    [first] = stream.handle_request(DeltaRequest(CLUSTER)).responses
    delta_ack(stream, first)
    [bad] = stream.set_resources(config(cluster("a"), cluster("b"), cluster("bad")))
    delta_ack(stream, bad, error="no good")
    # An unrelated change re-sends the forgotten ones too.
    [next_] = stream.set_resources(config(cluster("a", 4), cluster("b"), cluster("bad")))
    assert [r.name for r in next_.resources] == ["a", "b", "bad"]


def test_sotw_accepted_config_is_not_resent_by_a_push() -> None:
    stream = SotwStream()
    stream.set_resources(config(route("r")))
    [first] = sotw_initial(stream, ROUTE, "r")
    stream.handle_request(SotwRequest(ROUTE, first.version, first.nonce, ("r",)))
    assert stream.nacked() == []
    assert stream.set_resources(config(route("r"))) == []


def test_sotw_nacked_routes_resent_whole_on_the_next_push() -> None:
    stream = SotwStream()
    stream.set_resources(config(route("r"), route("s")))
    [first] = sotw_initial(stream, ROUTE, "r", "s")
    stream.handle_request(SotwRequest(ROUTE, first.version, first.nonce, ("r", "s")))
    [changed] = stream.set_resources(config(route_with_host("r"), route("s")))
    assert [r.name for r in changed.resources] == ["r"]
    stream.handle_request(
        SotwRequest(ROUTE, first.version, changed.nonce, ("r", "s"), error_detail="no")
    )
    assert stream.nacked() == [ROUTE]
    [again] = stream.set_resources(config(route_with_host("r"), route("s")))
    assert [r.name for r in again.resources] == ["r", "s"]
    stream.handle_request(SotwRequest(ROUTE, again.version, again.nonce, ("r", "s")))
    assert stream.nacked() == []
    assert stream.status()[ROUTE].state is SyncState.SYNCED


def test_delta_nacked_resources_resent_on_the_next_push_unchanged() -> None:
    stream = DeltaStream()
    stream.set_resources(config(cluster("a")))
    [first] = stream.handle_request(DeltaRequest(CLUSTER)).responses
    delta_ack(stream, first)
    [bad] = stream.set_resources(config(cluster("a"), cluster("bad")))
    delta_ack(stream, bad, error="port in use")
    assert stream.nacked() == [CLUSTER]
    # Nothing changed, yet the push carries the rejected resource again (only it).
    [again] = stream.set_resources(config(cluster("a"), cluster("bad")))
    assert [r.name for r in again.resources] == ["bad"]
    delta_ack(stream, again)
    assert stream.nacked() == []
    assert stream.status()[CLUSTER].state is SyncState.SYNCED
    assert stream.set_resources(config(cluster("a"), cluster("bad"))) == []


def test_nack_retry_delay_doubles_up_to_the_maximum() -> None:
    assert [nack_retry_delay(n, 1.0, 30.0) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert nack_retry_delay(10_000, 0.5, 5.0) == 5.0


def test_delta_ack_of_response_sent_before_nack_keeps_stale() -> None:
    stream = DeltaStream()
    stream.set_resources(config(cluster("a")))
    [first] = stream.handle_request(DeltaRequest(CLUSTER)).responses
    [bad] = stream.set_resources(config(cluster("a"), cluster("bad")))
    [other] = stream.set_resources(config(cluster("a", 2), cluster("bad")))
    delta_ack(stream, first)
    delta_ack(stream, bad, error="no good")
    delta_ack(stream, other)
    assert stream.status()[CLUSTER].state is SyncState.STALE


def test_delta_stale_nonce_still_applies_subscription() -> None:
    stream = DeltaStream()
    stream.set_resources(config(assignment("a"), assignment("b")))
    stream.handle_request(DeltaRequest(ENDPOINT, subscribe=("a",)))
    handled = stream.handle_request(DeltaRequest(ENDPOINT, subscribe=("b",), response_nonce="999"))
    assert handled.stale
    assert [r.name for r in handled.responses[0].resources] == ["b"]


def test_delta_unknown_node_waits() -> None:
    stream = DeltaStream()
    stream.set_resources(None)
    assert stream.handle_request(DeltaRequest(LISTENER)).responses == []
    assert stream.status()[LISTENER].state is SyncState.NOT_SENT
    [response] = stream.set_resources({})
    assert response.resources == () and response.type_url == LISTENER


def test_sotw_endpoint_change_sends_only_the_changed_assignment() -> None:
    stream = SotwStream()
    stream.set_resources(config(assignment("a"), assignment("b"), assignment("c")))
    [first] = sotw_initial(stream, ENDPOINT, "a", "b", "c")
    assert [r.name for r in first.resources] == ["a", "b", "c"]
    stream.handle_request(
        SotwRequest(ENDPOINT, first.version, first.nonce, resource_names=("a", "b", "c"))
    )
    [update] = stream.set_resources(
        config(assignment("a"), assignment_with_priority("b"), assignment("c"))
    )
    assert [r.name for r in update.resources] == ["b"]
    assert update.version != first.version
    # A fresh request (a reconnect) gets the whole subscribed set again.
    [again] = sotw_initial(stream, ENDPOINT, "a", "b", "c")
    assert [r.name for r in again.resources] == ["a", "b", "c"]


# --- layered sets: one change costs one resource per proxy ----------------------------


def test_sotw_endpoint_change_on_a_shared_base_sends_one_assignment() -> None:
    names = [f"c{i}" for i in range(100)]
    old_eds = ResourceSet({n: assignment(n) for n in names})
    new_eds = ResourceSet({**old_eds, "c42": assignment_with_priority("c42")})
    shared_cds = ResourceSet({n: cluster(n) for n in names})
    streams = []
    for proxy in range(3):
        stream = SotwStream()
        own = cluster(f"inbound-{proxy}")
        stream.set_resources({CLUSTER: ResourceSet({own.name: own}, shared_cds), ENDPOINT: old_eds})
        [cds] = sotw_initial(stream, CLUSTER)
        assert len(cds.resources) == 101
        stream.handle_request(SotwRequest(CLUSTER, cds.version, cds.nonce))
        [eds] = sotw_initial(stream, ENDPOINT, *names)
        stream.handle_request(SotwRequest(ENDPOINT, eds.version, eds.nonce, tuple(names)))
        streams.append((stream, own))
    for stream, own in streams:
        responses = stream.set_resources(
            {CLUSTER: ResourceSet({own.name: own}, shared_cds), ENDPOINT: new_eds}
        )
        assert [(r.type_url, [x.name for x in r.resources]) for r in responses] == [
            (ENDPOINT, ["c42"])
        ]


def test_delta_tracks_what_the_client_holds_without_copying_it() -> None:
    names = [f"c{i}" for i in range(20)]
    stream = DeltaStream()
    first = ResourceSet({n: cluster(n) for n in names})
    stream.set_resources({CLUSTER: first})
    [initial] = stream.handle_request(DeltaRequest(CLUSTER)).responses
    assert len(initial.resources) == 20
    stream.handle_request(DeltaRequest(CLUSTER, response_nonce=initial.nonce))
    second = ResourceSet({**{n: cluster(n) for n in names[1:]}, "c5": cluster("c5", 7)})
    [update] = stream.set_resources({CLUSTER: second})
    assert [r.name for r in update.resources] == ["c5"] and update.removed == ("c0",)
    nack = DeltaRequest(CLUSTER, response_nonce=update.nonce, error_detail="no")
    stream.handle_request(nack)
    assert "c5" not in stream.known(CLUSTER)
    third = ResourceSet({**second, "c9": cluster("c9", 3)})
    [resend] = stream.set_resources({CLUSTER: third})
    assert sorted(r.name for r in resend.resources) == ["c5", "c9"]
    assert stream.known(CLUSTER)["c9"] == cluster("c9", 3).version
    assert len(stream.known(CLUSTER)) == 19


def test_sotw_names_key_skips_rereading_an_unchanged_subscription() -> None:
    stream = SotwStream()
    stream.set_resources(config(assignment("a"), assignment("b")))
    [first] = stream.handle_request(
        SotwRequest(ENDPOINT, resource_names=("a",), names_key=b"k1")
    ).responses
    assert [r.name for r in first.resources] == ["a"]
    ack = SotwRequest(ENDPOINT, first.version, first.nonce, ("a", "b"), names_key=b"k1")
    assert stream.handle_request(ack).responses == []  # same key: names not read
    more = SotwRequest(ENDPOINT, first.version, first.nonce, ("a", "b"), names_key=b"k2")
    [second] = stream.handle_request(more).responses
    assert [r.name for r in second.resources] == ["b"]
