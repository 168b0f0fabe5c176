"""Workload documents → instance specs, and the reconcile diff (pure functions)."""

from __future__ import annotations

from typing import Any

from ratline.runtime.local.workloads import (
    InstanceSpec,
    desired_instances,
    parse_workload,
    plan_reconcile,
)


def workload(name: str = "reviews-v1", replicas: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ratline.dev/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "reviews"}},
        "spec": {"replicas": replicas, "command": ["python3", "app.py"], **spec},
    }


def test_parse_reads_every_field() -> None:
    spec, replicas = parse_workload(
        workload(
            replicas=3,
            serviceAccount="bookinfo-reviews",
            env={"B": "2", "A": "1"},
            workingDir="reviews",
            ports=[{"name": "http", "containerPort": 9080}, {"containerPort": 9090}],
        )
    )
    assert replicas == 3
    assert spec.command == ("python3", "app.py")
    assert spec.env_map == {"A": "1", "B": "2"}
    assert spec.working_dir == "reviews"
    assert spec.service_account == "bookinfo-reviews"
    assert spec.label_map == {"app": "reviews"}
    assert [(p.container_port, p.name) for p in spec.ports] == [(9080, "http"), (9090, "")]


def test_namespace_defaults_to_default() -> None:
    doc = workload()
    del doc["metadata"]["namespace"]
    spec, _ = parse_workload(doc)
    assert spec.namespace == "default"


def test_desired_instances_names_each_replica_and_reports_bad_documents() -> None:
    bad = workload("broken")
    bad["spec"]["command"] = []
    desired, errors = desired_instances([workload(replicas=2), bad])
    assert sorted(desired) == [("default", "reviews-v1-0"), ("default", "reviews-v1-1")]
    assert desired[("default", "reviews-v1-1")].index == 1
    assert len(errors) == 1 and "Workload default/broken" in errors[0]


def _specs(*docs: dict[str, Any]) -> dict[tuple[str, str], InstanceSpec]:
    return desired_instances(docs)[0]


def test_plan_starts_new_and_stops_removed_instances() -> None:
    running = _specs(workload("a", replicas=2))
    desired = _specs(workload("a", replicas=1), workload("b"))
    plan = plan_reconcile(running, desired)
    assert plan.stop == (("default", "a-1"),)
    assert [s.name for s in plan.start] == ["b-0"]


def test_plan_restarts_changed_instances_only() -> None:
    running = _specs(workload("a", replicas=2), workload("b"))
    desired = _specs(workload("a", replicas=2, env={"X": "1"}), workload("b"))
    plan = plan_reconcile(running, desired)
    assert plan.stop == (("default", "a-0"), ("default", "a-1"))
    assert [s.name for s in plan.start] == ["a-0", "a-1"]


def test_plan_is_empty_when_nothing_changed() -> None:
    running = _specs(workload("a", replicas=2))
    assert plan_reconcile(running, _specs(workload("a", replicas=2))).empty
    # Scaling up starts only the new replica.
    plan = plan_reconcile(running, _specs(workload("a", replicas=3)))
    assert plan.stop == () and [s.name for s in plan.start] == ["a-2"]
