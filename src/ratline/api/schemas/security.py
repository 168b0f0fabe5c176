"""Istio's security.istio.io kinds: PeerAuthentication, AuthorizationPolicy,
RequestAuthentication.

The full schemas, so that such resources validate; their translation comes later.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from ratline.api.schemas.common import (
    LabelSelector,
    NonEmptyStr,
    PolicyTargetReference,
    PositiveDuration,
    Seq,
    Spec,
)

MtlsMode = Literal["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]


class MutualTLS(Spec):
    mode: MtlsMode = "UNSET"


class PeerAuthenticationSpec(Spec):
    """What mutual TLS a workload accepts, for all or some ports."""

    selector: LabelSelector | None = None
    mtls: MutualTLS | None = None
    port_level_mtls: dict[Annotated[int, Strict(False)], MutualTLS] = {}

    @model_validator(mode="after")
    def _ports(self) -> PeerAuthenticationSpec:
        if self.port_level_mtls and self.selector is None:
            raise ValueError("portLevelMtls needs a selector")
        bad = [p for p in self.port_level_mtls if not 1 <= p <= 65535]
        if bad:
            raise ValueError(f"portLevelMtls port {bad[0]} must be 1..65535")
        return self


class Source(Spec):
    """Who a request comes from (all listed fields must match)."""

    principals: Seq[str] = ()
    not_principals: Seq[str] = ()
    request_principals: Seq[str] = ()
    not_request_principals: Seq[str] = ()
    namespaces: Seq[str] = ()
    not_namespaces: Seq[str] = ()
    ip_blocks: Seq[str] = ()
    not_ip_blocks: Seq[str] = ()
    remote_ip_blocks: Seq[str] = ()
    not_remote_ip_blocks: Seq[str] = ()


class Operation(Spec):
    """What a request does (all listed fields must match)."""

    hosts: Seq[str] = ()
    not_hosts: Seq[str] = ()
    ports: Seq[str] = ()
    not_ports: Seq[str] = ()
    methods: Seq[str] = ()
    not_methods: Seq[str] = ()
    paths: Seq[str] = ()
    not_paths: Seq[str] = ()


class RuleFrom(Spec):
    source: Source


class RuleTo(Spec):
    operation: Operation


class Condition(Spec):
    key: NonEmptyStr
    values: Seq[str] = ()
    not_values: Seq[str] = ()

    @model_validator(mode="after")
    def _some_values(self) -> Condition:
        if not self.values and not self.not_values:
            raise ValueError("set values or notValues")
        return self


class Rule(Spec):
    """A request matches a rule when it matches a `from`, a `to` and every `when`."""

    from_: Seq[RuleFrom] = Field(default=(), alias="from")
    to: Seq[RuleTo] = ()
    when: Seq[Condition] = ()


class ExtensionProvider(Spec):
    name: NonEmptyStr


class AuthorizationPolicySpec(Spec):
    """Allow, deny, audit or delegate (CUSTOM) access to workloads."""

    selector: LabelSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: Seq[PolicyTargetReference] = ()
    rules: Seq[Rule] = ()
    action: Literal["ALLOW", "DENY", "AUDIT", "CUSTOM"] = "ALLOW"
    provider: ExtensionProvider | None = None

    @model_validator(mode="after")
    def _check(self) -> AuthorizationPolicySpec:
        targets = sum(
            1 for set_ in (self.selector, self.target_ref, self.target_refs or None) if set_
        )
        if targets > 1:
            raise ValueError("set only one of selector, targetRef, targetRefs")
        if self.action == "CUSTOM" and self.provider is None:
            raise ValueError("action CUSTOM needs a provider")
        if self.action != "CUSTOM" and self.provider is not None:
            raise ValueError("provider is only allowed with action CUSTOM")
        return self


class JWTHeader(Spec):
    name: NonEmptyStr
    prefix: str | None = None


class ClaimToHeader(Spec):
    header: NonEmptyStr
    claim: NonEmptyStr


class JWTRule(Spec):
    """How to find and verify one issuer's JWTs."""

    issuer: NonEmptyStr
    audiences: Seq[str] = ()
    jwks_uri: str | None = None
    jwks: str | None = None
    from_headers: Seq[JWTHeader] = ()
    from_params: Seq[str] = ()
    from_cookies: Seq[str] = ()
    output_payload_to_header: str | None = None
    forward_original_token: bool | None = None
    output_claim_to_headers: Seq[ClaimToHeader] = ()
    timeout: PositiveDuration | None = None

    @model_validator(mode="after")
    def _keys(self) -> JWTRule:
        if self.jwks_uri is not None and self.jwks is not None:
            raise ValueError("set only one of jwksUri, jwks")
        return self


class RequestAuthenticationSpec(Spec):
    """Which JWTs a workload accepts."""

    selector: LabelSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: Seq[PolicyTargetReference] = ()
    jwt_rules: Seq[JWTRule] = ()


__all__ = [
    "AuthorizationPolicySpec",
    "ClaimToHeader",
    "Condition",
    "ExtensionProvider",
    "JWTHeader",
    "JWTRule",
    "MtlsMode",
    "MutualTLS",
    "Operation",
    "PeerAuthenticationSpec",
    "RequestAuthenticationSpec",
    "Rule",
    "RuleFrom",
    "RuleTo",
    "Source",
]
