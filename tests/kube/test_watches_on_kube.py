"""Watches against the real API server: list then watch, changes, a 410 Gone answered by
a relist that notices what was deleted meanwhile, and config of a kind whose CRD is
installed after the store started (any kind `ratline.api.kinds` learns flows this way)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import pytest

from ratline.api.kinds import KINDS, KindInfo
from ratline.api.schemas.common import PositiveInt, Spec
from ratline.kube.config_store import KubeConfigStore
from ratline.kube.connection import KubeConnection
from ratline.kube.crds import custom_resource_definition
from ratline.kube.informer import Informer
from ratline.kube.resources import CONFIG_MAP
from ratline.kube.watch import Change
from tests.kube.ratline_on_kube import wait_crds_established
from tests.kube_cluster import KubeCluster

pytestmark = [pytest.mark.kube, pytest.mark.timeout(120)]

NS = "watches"


def config_map(name: str, value: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NS},
            "data": {"v": value},
        }
    )


async def until(condition: Any, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def namespace(kube_cluster: KubeCluster) -> Any:
    kube_cluster.apply(
        json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    )
    yield NS
    kube_cluster.kubectl("delete", "namespace", NS, "--wait=false")


async def test_list_watch_and_relist_after_410(kube_cluster: KubeCluster, namespace: str) -> None:
    kube_cluster.apply(config_map("a", "1"))
    connection = await KubeConnection.from_kubeconfig(kube_cluster.admin_kubeconfig)
    seen: list[Change[Any]] = []

    def data(obj: Mapping[str, Any]) -> Any:
        return (obj.get("data") or {}).get("v")

    informer: Informer[Any] = Informer(connection, CONFIG_MAP, data, seen.extend, namespace=NS)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 15)
        assert informer.objects[(NS, "a")] == "1"
        await asyncio.to_thread(kube_cluster.apply, config_map("a", "2"))
        await asyncio.to_thread(kube_cluster.apply, config_map("b", "1"))
        await until(
            lambda: informer.objects.get((NS, "a")) == "2" and (NS, "b") in informer.objects
        )
        # The watch stops; meanwhile b is deleted and c created; it resumes from a version
        # the server no longer has (410 Gone): the relist reports both, the deletion too.
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(kube_cluster.kubectl, "delete", "configmap", "b", "-n", NS)
        await asyncio.to_thread(kube_cluster.apply, config_map("c", "1"))
        # The API server's watch cache keeps history since it started: compact etcd and
        # restart it, so the watch's version is gone from both.
        await asyncio.to_thread(kube_cluster.compact_etcd)
        await asyncio.to_thread(kube_cluster.restart_apiserver)
        seen.clear()
        task = asyncio.create_task(informer.run())
        await until(lambda: (NS, "c") in informer.objects and (NS, "b") not in informer.objects)
        assert informer.relists == 2
        assert {(c.key, c.new) for c in seen} >= {((NS, "b"), None), ((NS, "c"), "1")}
        assert informer.objects[(NS, "a")] == "2"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await connection.close()


class WidgetSpec(Spec):
    size: PositiveInt


async def test_a_kind_whose_crd_comes_later_flows_in(
    kube_cluster: KubeCluster, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kind someone adds to `ratline.api.kinds` (here at run time) is watched and read
    with no change to `ratline.kube`; its CRD may come after the control plane started."""
    info = KindInfo("Widget", ("widgets.test.ratline.dev/v1",), WidgetSpec)
    monkeypatch.setitem(KINDS, "Widget", info)  # type: ignore[index]
    kinds: Mapping[str, KindInfo] = {"Widget": info}  # watch only this one here
    connection = await KubeConnection.from_kubeconfig(kube_cluster.admin_kubeconfig)
    store = KubeConfigStore(connection, "istio-system", kinds)
    await store.start()
    watching = asyncio.create_task(store.watch())
    crd = custom_resource_definition(info)
    try:
        await asyncio.wait_for(store.wait_synced(), 15)
        assert "Widget" not in store.types  # not served yet
        await asyncio.to_thread(kube_cluster.apply, json.dumps(crd))
        await asyncio.to_thread(wait_crds_established, kube_cluster, (crd["metadata"]["name"],))
        await until(lambda: "Widget" in store.types, timeout=20)
        widget = {
            "apiVersion": "widgets.test.ratline.dev/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "namespace": NS},
            "spec": {"size": 3},
        }
        for _ in range(50):  # a custom resource can 404 for a moment after Established
            proc = await asyncio.to_thread(kube_cluster.apply, json.dumps(widget), check=False)
            if proc.returncode == 0:
                break
            await asyncio.sleep(0.2)
        await until(lambda: bool(store.stored("Widget")))
        assert store.stored("Widget")[0].resource.spec == WidgetSpec(size=3)
        # A Widget the CRD's schema lets through (types only) but Ratline refuses: the
        # last good one stays in force, and the refusal is reported.
        bad = {**widget, "spec": {"size": 0}}
        await asyncio.to_thread(kube_cluster.apply, json.dumps(bad))
        await until(lambda: bool(store.refused))
        assert store.refused[0].field == "spec.size"
        assert store.stored("Widget")[0].resource.spec == WidgetSpec(size=3)
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await connection.close()
        kube_cluster.kubectl("delete", "crd", crd["metadata"]["name"], "--wait=false")
