"""TokenReview answers → identities for the CA (`ratline.kube.tokens`)."""

from __future__ import annotations

import pytest

from ratline.ca.identity import Identity
from ratline.ca.service import Refused
from ratline.kube.tokens import reviewed_identity


def test_a_service_account_token_proves_its_account_and_names_its_pod() -> None:
    answer: dict[str, object] = {
        "status": {
            "authenticated": True,
            "user": {
                "username": "system:serviceaccount:bookinfo:bookinfo-reviews",
                "extra": {"authentication.kubernetes.io/pod-name": ["reviews-v1-abc"]},
            },
        }
    }
    identity, caller = reviewed_identity(answer, "cluster.local")
    assert identity == Identity("cluster.local", "bookinfo", "bookinfo-reviews")
    assert caller == "pod bookinfo/reviews-v1-abc"


def test_refused_tokens() -> None:
    with pytest.raises(Refused, match="audiences"):
        reviewed_identity(
            {"status": {"authenticated": False, "error": "wrong audiences"}}, "cluster.local"
        )
    with pytest.raises(Refused, match="not a service account"):
        reviewed_identity(
            {"status": {"authenticated": True, "user": {"username": "alice"}}}, "cluster.local"
        )
