"""Lease election decisions, sans IO (`ratline.kube.leader.LeaseElection`)."""

from __future__ import annotations

from ratline.kube.leader import Action, LeaseElection


def lease(holder: str, renew: str, duration: int = 15) -> dict[str, object]:
    return {
        "spec": {
            "holderIdentity": holder,
            "renewTime": renew,
            "leaseDurationSeconds": duration,
            "leaseTransitions": 2,
        }
    }


def test_create_renew_wait_and_take_over_by_the_local_clock() -> None:
    me = LeaseElection("me", 15)
    assert me.decide(None, now=100.0) is Action.CREATE
    assert me.decide(lease("me", "t1"), now=101.0) is Action.RENEW
    # Another holder: wait while its record keeps changing, take over once it has not
    # changed for a whole lease duration as measured here (its clock is never read).
    assert me.decide(lease("other", "t1"), now=200.0) is Action.WAIT
    assert me.decide(lease("other", "t2"), now=210.0) is Action.WAIT
    assert me.decide(lease("other", "t2"), now=224.0) is Action.WAIT
    assert me.decide(lease("other", "t2"), now=225.0) is Action.TAKE_OVER
    assert me.decide(lease("", "t2"), now=226.0) is Action.TAKE_OVER  # released


def test_the_spec_written() -> None:
    me = LeaseElection("me", 15)
    taken = me.spec(lease("other", "x"), Action.TAKE_OVER, wall=0.0)
    assert taken["holderIdentity"] == "me" and taken["leaseTransitions"] == 3
    assert taken["renewTime"] == "1970-01-01T00:00:00.000000Z"
    renewed = me.spec({"spec": taken}, Action.RENEW, wall=5.0)
    assert renewed["acquireTime"] == taken["acquireTime"]
    assert renewed["renewTime"] == "1970-01-01T00:00:05.000000Z"
