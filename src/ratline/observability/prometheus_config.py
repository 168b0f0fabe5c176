"""A complete `prometheus.yml` for a running mesh (pure): no hand-written targets.

Two scrape jobs with Istio's names: `istiod` (the control plane's `/metrics`) and
`envoy-stats` (every sidecar's and gateway's merged metrics port), both found through
the control plane's HTTP service discovery, authenticated with the admin credential file.
"""

from __future__ import annotations

from typing import Any

SD_PATH = "/v1/prometheus/sd"
JOBS = ("istiod", "envoy-stats")


def prometheus_config(
    admin_url: str,
    credentials_file: str,
    *,
    scrape_interval: str = "15s",
    sd_refresh: str = "5s",
) -> dict[str, Any]:
    """`admin_url` is `http://HOST:PORT` of the control plane's admin API."""
    auth = {"type": "Bearer", "credentials_file": credentials_file}
    return without_nulls({
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": job,
                "authorization": auth if job == "istiod" else None,
                "http_sd_configs": [
                    {
                        "url": f"{admin_url}{SD_PATH}?job={job}",
                        "refresh_interval": sd_refresh,
                        "authorization": auth,
                    }
                ],
            }
            for job in JOBS
        ],
    })


def without_nulls(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: without_nulls(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [without_nulls(v) for v in data]
    return data
