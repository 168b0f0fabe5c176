"""The Kubernetes tests' cluster: one etcd + kube-apiserver + kube-controller-manager for
the whole session (about 10 s to start), stopped by PID at the end.

Modules that use it install what they need (CRDs, namespaces) and remove their namespaces
and the webhook configuration when they are done, so they do not see each other's objects.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kube_cluster import FakeNode, KubeCluster, running_cluster


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    with running_cluster(tmp_path_factory.mktemp("kube")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def fake_node(kube_cluster: KubeCluster) -> FakeNode:
    return FakeNode(kube_cluster)
