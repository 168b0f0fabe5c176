"""Which xDS streams the control plane accepts: a node's config only for its own identity."""

from __future__ import annotations

from ratline.controlplane.security import authorize_node

NODE = "sidecar~127.0.0.1~reviews-v1-0.default~default.svc.cluster.local"
REVIEWS = "spiffe://cluster.local/ns/default/sa/reviews"


def _check(peers: tuple[str, ...], account: str | None = "reviews") -> str | None:
    return authorize_node(NODE, peers, "cluster.local", lambda _node: account)


def test_own_identity_is_accepted() -> None:
    assert _check((REVIEWS,)) is None
    assert _check(("spiffe://cluster.local/ns/default/sa/any",), account=None) is None


def test_other_identities_are_refused_with_the_reason() -> None:
    refusal = _check(("spiffe://cluster.local/ns/default/sa/ratings",))
    assert refusal is not None and "service account reviews" in refusal
    assert _check(("spiffe://cluster.local/ns/other/sa/reviews",), account=None) is not None
    assert _check(("spiffe://evil.domain/ns/default/sa/reviews",)) is not None
    assert "no SPIFFE ID" in str(_check(()))
    assert "not a Ratline node id" in str(
        authorize_node("garbage", (REVIEWS,), "cluster.local", lambda _n: None)
    )
