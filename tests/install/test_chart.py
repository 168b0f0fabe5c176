"""`charts/ratline` renders with the real `helm` exactly what Ratline renders in Python.

The generated files are what `ratline.install.chart` makes today (else: run
`python -m ratline.install.chart charts/ratline`); `helm template` with the defaults and
with changed values gives the same objects, object for object, as
`ratline manifest generate` with the same values; `helm lint` accepts the chart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ratline.install.chart import chart_files
from ratline.install.render import render
from ratline.install.values import DEFAULTS, load_values_file, parse_set, resolve
from ratline.kube.crds import all_crds
from ratline.kube.rbac import rbac_manifests
from tests.install.helm_chart import CHART, documents, helm, helm_template, normalized
from tests.kube.ratline_on_kube import ratline_cli

NS = "mesh-system"
CHANGED = {
    "base": {"validationURL": "https://127.0.0.1:15017/validate"},
    "controlplane": {
        "replicaCount": 2,
        "image": {"repository": "registry.example/ratline", "tag": "dev"},
        "injectionURL": "https://127.0.0.1:15017/inject",
        "env": {"RATLINE_XDS_TLS": "false", "RATLINE_BIND_ADDRESS": "::"},
        "meshConfig": {
            "accessLogFile": "/dev/stdout",
            "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
            "defaultConfig": {"holdApplicationUntilProxyStarts": True},
        },
    },
    "gateways": {
        "name": "edge",
        "labels": {"istio": "edge", "app": "edge"},
        "service": {
            "type": "ClusterIP",
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    },
}
SETS = ["controlplane.meshConfig.enablePrometheusMerge=false", "gateways.replicaCount=3"]


def test_generated_chart_files_are_current() -> None:
    stale = [p for p, text in chart_files().items() if (CHART / p).read_text() != text]
    assert not stale, f"run `python -m ratline.install.chart charts/ratline`: {stale}"


def test_chart_values_are_the_defaults() -> None:
    chart = load_values_file((CHART / "values.yaml").read_text(), "values.yaml")
    for part in DEFAULTS:
        sub = load_values_file((CHART / "charts" / part / "values.yaml").read_text(), part)
        assert {**sub, **chart[part]} == DEFAULTS[part]


def test_helm_lint() -> None:
    helm("lint", str(CHART), "--strict")


def _same(helm_text: str, ours: list[dict[str, Any]]) -> None:
    theirs = normalized(documents(helm_text))
    mine = normalized(ours)
    assert sorted(theirs) == sorted(mine)
    for key in mine:
        assert theirs[key] == mine[key], key


def test_helm_template_equals_ratline_render_with_defaults() -> None:
    text = helm_template(NS)
    _same(text, render(NS, resolve([])))
    kinds = [d["kind"] for d in documents(text)]
    assert kinds.count("CustomResourceDefinition") == len(all_crds())
    # The CRDs and RBAC are `ratline manifest crds|rbac`'s, byte for byte as objects.
    by_key = normalized(documents(text))
    for obj in [*all_crds(), *rbac_manifests(NS)]:
        meta = obj["metadata"]
        assert by_key[(obj["kind"], meta.get("namespace", ""), meta["name"])] == obj


def test_helm_template_equals_manifest_generate_with_changed_values(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(CHANGED))
    text = helm_template(NS, SETS, [values])
    cli = ratline_cli(
        "manifest",
        "generate",
        "-n",
        NS,
        "-f",
        str(values),
        *[a for s in SETS for a in ("--set", s)],
    ).stdout
    _same(text, documents(cli))
    expected = render(NS, resolve([CHANGED, *[parse_set(s) for s in SETS]]))
    _same(text, expected)
    gateway = normalized(documents(text))[("Deployment", NS, "edge")]
    assert gateway["spec"]["replicas"] == 3
    assert gateway["spec"]["selector"]["matchLabels"] == {"istio": "edge", "app": "edge"}


@pytest.mark.parametrize("part", ["base", "controlplane", "gateways"])
def test_each_part_can_be_left_out(part: str) -> None:
    text = helm_template(NS, [f"{part}.enabled=false"])
    _same(text, render(NS, resolve([parse_set(f"{part}.enabled=false")])))


def test_the_parts_install_alone_as_istios_three_charts() -> None:
    """`helm install ratline-base charts/ratline/charts/base`, then controlplane, gateways."""
    alone = []
    for part in ("base", "controlplane", "gateways"):
        alone += documents(
            helm("template", f"ratline-{part}", str(CHART / "charts" / part), "-n", NS).stdout
        )
    _same(yaml.safe_dump_all(alone), render(NS, resolve([])))
