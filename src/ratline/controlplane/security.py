"""The control plane's security material: the CA, the credentials it checks, its own cert.

Set up once at start: the mesh CA (plugged in from `MESH_DIR/cacerts/` or
`RATLINE_CA_CERTS_DIR`, else self-created in `DIR/.ratline/ca/`), the workload-token key
and the admin token (both 0600 in the state dir), a serving certificate for the xDS and
CSR channel signed by the mesh CA, and the trust bundle published for the runner.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from ratline.ca.authority import CertificateAuthority
from ratline.ca.csr import private_key_pem
from ratline.ca.files import load_or_create_secret, make_private_dir
from ratline.ca.identity import (
    CONTROL_PLANE_ACCOUNT,
    CONTROL_PLANE_HOST,
    CONTROL_PLANE_NAMESPACE,
    Identity,
    parse_spiffe_id,
)
from ratline.ca.service import CertificateService
from ratline.ca.tokens import new_token_key
from ratline.config.persist import write_atomic
from ratline.registry.instances import parse_node_id
from ratline.settings import Settings, state_dir
from ratline.xds.types import ServerTls

log = logging.getLogger("ratline.controlplane")

CA_DIR = "ca"
TOKEN_KEY_FILE = "token-key"
TRUST_BUNDLE_FILE = "trust-bundle.pem"
ADMIN_TOKEN_FILE = "admin-token"
PLUGGED_CA_DIR = "cacerts"
SERVER_CERT_TTL_S = 365 * 24 * 3600.0


def admin_token_path(mesh_dir: Path) -> Path:
    return state_dir(mesh_dir) / ADMIN_TOKEN_FILE


def token_key_path(mesh_dir: Path) -> Path:
    return state_dir(mesh_dir) / CA_DIR / TOKEN_KEY_FILE


def trust_bundle_path(mesh_dir: Path) -> Path:
    return state_dir(mesh_dir) / CA_DIR / TRUST_BUNDLE_FILE


def authorize_node(
    node_id: str,
    peer_ids: tuple[str, ...],
    trust_domain: str,
    service_account_of: Callable[[str], str | None],
) -> str | None:
    """Why a proxy may not get `node_id`'s config over this stream, or None if it may.

    The client certificate must be of the node's namespace (as Istio checks) and, when
    the registry knows the instance, of its service account too.
    """
    try:
        _kind, _address, _name, namespace = parse_node_id(node_id)
    except ValueError as exc:
        return str(exc)
    identities = []
    for uri in peer_ids:
        try:
            identities.append(parse_spiffe_id(uri))
        except ValueError:
            continue
    if not identities:
        return f"{node_id}: the client certificate carries no SPIFFE ID"
    account = service_account_of(node_id)
    for identity in identities:
        if identity.trust_domain != trust_domain or identity.namespace != namespace:
            continue
        if account is None or identity.service_account == account:
            return None
    wanted = f"namespace {namespace}" + (f", service account {account}" if account else "")
    return (
        f"{node_id}: the client certificate ({', '.join(peer_ids)}) is not of {wanted}; "
        f"a workload may only fetch its own config"
    )


def load_admin_token(mesh_dir: Path) -> str:
    """The admin API credential, created (0600) on first start."""
    make_private_dir(state_dir(mesh_dir))
    created = secrets.token_urlsafe(32).encode()
    return load_or_create_secret(admin_token_path(mesh_dir), created).decode().strip()


@dataclass
class ControlPlaneSecurity:
    ca: CertificateAuthority
    certificates: CertificateService
    admin_token: str
    server_chain_pem: str
    server_key_pem: str

    @classmethod
    def setup(cls, mesh_dir: Path, settings: Settings, trust_domain: str) -> ControlPlaneSecurity:
        """Load or create everything; CaError / InsecureFileError say what is wrong."""
        ca_dir = state_dir(mesh_dir) / CA_DIR
        make_private_dir(ca_dir)
        plugged = mesh_dir / PLUGGED_CA_DIR
        if settings.ca_certs_dir:
            plugged = Path(settings.ca_certs_dir)
        ca = CertificateAuthority.load_or_create(ca_dir, plugged, trust_domain)
        log.info("mesh CA %s; trust domain %s", ca.origin, trust_domain)
        token_key = load_or_create_secret(token_key_path(mesh_dir), new_token_key())
        write_atomic(trust_bundle_path(mesh_dir), ca.root_pem.encode())
        key = ec.generate_private_key(ec.SECP256R1())
        identity = Identity(trust_domain, CONTROL_PLANE_NAMESPACE, CONTROL_PLANE_ACCOUNT)
        ips = sorted({"127.0.0.1", settings.bind_address} - {"0.0.0.0"})
        issued = ca.issue_server(
            key.public_key(), identity, [CONTROL_PLANE_HOST, "localhost"], ips, SERVER_CERT_TTL_S
        )
        return cls(
            ca=ca,
            certificates=CertificateService(ca, token_key, trust_domain),
            admin_token=load_admin_token(mesh_dir),
            server_chain_pem=issued.chain_pem,
            server_key_pem=private_key_pem(key).decode(),
        )

    def xds_credentials(self) -> ServerTls:
        """mTLS for xDS: proxies must present a certificate of the mesh CA (as PEM, which
        the xDS server, or each of its worker processes, turns into gRPC credentials)."""
        return ServerTls(self.server_key_pem, self.server_chain_pem, self.ca.root_pem)
