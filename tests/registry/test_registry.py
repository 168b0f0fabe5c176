"""The registry: decoding runners' reports, and what a report changes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ratline.registry.instances import InstanceDecoder, InstancePort, WorkloadInstance
from ratline.registry.registry import ReportedInstances


def instance(name: str, port: int = 9080, healthy: bool = True) -> WorkloadInstance:
    return WorkloadInstance(
        name=name,
        namespace="default",
        workload=name.rsplit("-", 1)[0],
        labels={"app": name.split("-")[0]},
        ports=(InstancePort(container_port=9080, app_port=port, inbound_port=port + 1),),
        healthy=healthy,
    )


def test_decoder_reuses_unchanged_entries_and_decodes_changed_ones() -> None:
    decoder = InstanceDecoder()
    first = decoder.decode("r", [instance("a-0").to_json(), instance("b-0").to_json()])
    second = decoder.decode(
        "r", [instance("a-0").to_json(), instance("b-0", healthy=False).to_json()]
    )
    assert second[0] is first[0]
    assert second[1] is not first[1] and second[1] == instance("b-0", healthy=False)
    assert first == [instance("a-0"), instance("b-0")]


def test_decoder_keeps_runners_apart_and_forgets_what_a_runner_dropped() -> None:
    decoder = InstanceDecoder()
    [a] = decoder.decode("one", [instance("a-0").to_json()])
    [other] = decoder.decode("two", [instance("a-0").to_json()])
    assert other is not a  # another runner's entry is decoded on its own
    decoder.decode("one", [])
    [again] = decoder.decode("one", [instance("a-0").to_json()])
    assert again is not a and again == a


def test_decoder_refuses_malformed_entries() -> None:
    with pytest.raises((KeyError, TypeError, ValueError)):
        InstanceDecoder().decode("r", [{"namespace": "default"}])


def test_registry_version_changes_only_when_instances_do() -> None:
    registry = ReportedInstances()
    calls: list[int] = []
    registry.subscribe(lambda: calls.append(1))
    before = registry.version
    assert registry.report("r", [instance("a-0")])
    changed = registry.version
    assert changed != before
    assert not registry.report("r", [instance("a-0")])
    assert registry.version == changed and len(calls) == 1
    assert registry.report("r", [replace(instance("a-0"), healthy=False)])
    assert registry.version != changed and len(calls) == 2
