"""EnvoyProcess with a real Envoy: ready via /ready, a bad bootstrap reported with its log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ratline.agent.bootstrap import BootstrapParams, build_bootstrap
from ratline.agent.envoy import EnvoyExitedError, EnvoyProcess
from ratline.agent.process import pid_alive
from ratline.runtime.local.ports import PortAllocator
from ratline.settings import Settings
from tests.helpers import free_port, http_get, kill_pids


@pytest.fixture
def envoys() -> list[EnvoyProcess]:
    started: list[EnvoyProcess] = []
    yield started
    kill_pids([e.pid for e in started if e.pid])


HCM_TYPE = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)


HCM_TYPE = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)


def static_bootstrap(admin_port: int, listen_port: int) -> dict[str, Any]:
    return {
        "node": {"id": "test", "cluster": "test"},
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "direct",
                    "address": {
                        "socket_address": {"address": "127.0.0.1", "port_value": listen_port}
                    },
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": HCM_TYPE,
                                        "stat_prefix": "direct",
                                        "route_config": {
                                            "virtual_hosts": [
                                                {
                                                    "name": "all",
                                                    "domains": ["*"],
                                                    "routes": [
                                                        {
                                                            "match": {"prefix": "/"},
                                                            "direct_response": {
                                                                "status": 200,
                                                                "body": {"inline_string": "ok"},
                                                            },
                                                        }
                                                    ],
                                                }
                                            ]
                                        },
                                        "http_filters": [
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {
                                                    "@type": "type.googleapis.com/"
                                                    "envoy.extensions.filters.http.router.v3.Router"
                                                },
                                            }
                                        ],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
        },
    }


def make(tmp_path: Path, bootstrap: dict[str, Any], admin_port: int) -> EnvoyProcess:
    return EnvoyProcess(
        envoy=Settings.from_env().envoy,
        bootstrap=bootstrap,
        config_path=tmp_path / "proxies" / "envoy.json",
        log_path=tmp_path / "logs" / "envoy.log",
        admin_port=admin_port,
    )


async def test_envoy_gets_ready_serves_and_stops(
    tmp_path: Path, envoys: list[EnvoyProcess]
) -> None:
    admin, listen = PortAllocator().allocate_many(2)
    envoy = make(tmp_path, static_bootstrap(admin, listen), admin)
    envoys.append(envoy)
    pid = await envoy.start()
    assert (tmp_path / "proxies" / "envoy.json").exists()
    assert await envoy.wait_ready(20) is True
    assert http_get(f"http://127.0.0.1:{listen}/")[:2] == (200, "ok")
    await envoy.stop(timeout_s=5)
    assert not pid_alive(pid)


async def test_envoy_waiting_for_xds_is_not_ready(
    tmp_path: Path, envoys: list[EnvoyProcess]
) -> None:
    admin = free_port()
    params = BootstrapParams(
        node_id="sidecar~127.0.0.1~a-0.default~default.svc.cluster.local",
        cluster="a.default",
        xds_host="127.0.0.1",
        xds_port=free_port(),
        admin_port=admin,
    )
    envoy = make(tmp_path, build_bootstrap(params), admin)
    envoys.append(envoy)
    await envoy.start()
    # Envoy answers its admin API but is not LIVE without its initial xDS config.
    from tests.helpers import wait_for

    wait_for(
        lambda: http_get(f"http://127.0.0.1:{admin}/ready")[0] == 503,
        timeout=20,
        what="admin API answering 503",
    )
    assert await envoy.wait_ready(0.5) is False
    await envoy.stop()


async def test_envoy_exiting_at_start_reports_its_log(
    tmp_path: Path, envoys: list[EnvoyProcess]
) -> None:
    admin = free_port()
    envoy = make(tmp_path, {"node": {"id": "x"}, "no_such_field": 1}, admin)
    envoys.append(envoy)
    await envoy.start()
    with pytest.raises(EnvoyExitedError, match="exited with code 1") as info:
        await envoy.wait_ready(20)
    assert "no_such_field" in str(info.value)
