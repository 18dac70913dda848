"""Operator settings: environment variables with the ACT_ prefix (the Helm chart sets them).

    ACT_NAMESPACES=team-a,team-b        watch these namespaces (empty: all)
    ACT_TRAINER_IMAGE=...               stage image when an ACTJob names none
    ACT_S3_CREDENTIALS_SECRET=          empty: no default Secret (e.g. IRSA / workload identity)
    ACT_ALLOWED_IMAGES=registry.example.com/ml/    the platform's policy (policy.py), comma-separated
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from act_operator import __version__
from act_operator.api import DNS_LABEL

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def check_dns(value: str, what: str, pattern: re.Pattern = DNS_SUBDOMAIN, limit: int = 253) -> str:
    if len(value) > limit or not pattern.match(value):
        raise ValueError(f"'{value}' is not a valid {what}: lowercase letters, digits and '-', "
                         f"starting and ending with a letter or digit, at most {limit} characters")
    return value


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ACT_", extra="ignore", validate_default=True)

    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Namespaces to watch, comma-separated; empty: the whole cluster.")
    trainer_image: str = Field(f"ghcr.io/act-operator/trainer:{__version__}", min_length=1,
                               description="Stage image when spec.pod.image is unset.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Pull policy when spec.pod.imagePullPolicy is unset.")
    stage_service_account: str = Field("act-stage", description="ServiceAccount of stage pods when "
                                                                "spec.pod.serviceAccountName is unset.")
    s3_endpoint: str | None = Field(None, description="S3 endpoint when spec.storage.s3.endpoint is unset.")
    s3_credentials_secret: str | None = Field(
        "act-s3", description="Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY when "
                              "spec.storage.s3.credentialsSecret is unset (mounted optional); empty: none.")
    mlflow_tracking_uri: str | None = Field(None, description="MLflow URI when spec.tracking.uri is unset.")
    mlflow_credentials_secret: str | None = Field(
        "act-mlflow", description="Secret with MLFLOW_TRACKING_TOKEN or USERNAME/PASSWORD when "
                                  "spec.tracking.credentialsSecret is unset; empty: none.")
    max_concurrent_reconciles: int = Field(8, ge=1, le=1000, description="ACTJobs reconciled at once.")
    port: int = Field(8080, ge=0, le=65535, description="Prometheus metrics port (/metrics); 0: off.")
    progress_interval_seconds: float = Field(
        15, ge=0, le=3600, description="How often the progress of a running stage is read from MLflow into the "
                                       "ACTJob status (one MLflow search per running stage); 0: never.")
    default_cpu: str = Field("1", description="CPU request of a stage pod whose stage sets no resources.cpu.")
    default_memory: str = Field("4Gi", description="Memory request of a stage pod whose stage sets no "
                                                   "resources.memory.")
    # the platform's policy (policy.py); the chart sets both from its policy values
    allowed_images: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Images spec.pod.image may name, comma-separated: an entry ending "
                                          "in /, : or @ is a prefix, any other one exact image; empty: any.")
    allowed_service_accounts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="ServiceAccounts spec.pod.serviceAccountName may name, "
                                          "comma-separated; empty: any.")

    def tracking_uri(self, spec_uri: str | None) -> str | None:
        """The MLflow URI of an ACTJob or ACTExperiment whose spec names `spec_uri` (or none)."""
        from act_operator.tracking import tracking_uri

        return tracking_uri(spec_uri, self.mlflow_tracking_uri)

    @field_validator("namespaces", mode="before")
    @classmethod
    def _namespaces(cls, v):
        return [check_dns(n, "namespace name (ACT_NAMESPACES)", DNS_LABEL, 63) for n in _listed(v)]

    @field_validator("allowed_images", mode="before")
    @classmethod
    def _images(cls, v):
        return _listed(v)

    @field_validator("allowed_service_accounts", mode="before")
    @classmethod
    def _service_accounts(cls, v):
        return [check_dns(n, "ServiceAccount name (ACT_ALLOWED_SERVICE_ACCOUNTS)") for n in _listed(v)]

    @field_validator("s3_endpoint", "mlflow_tracking_uri", "s3_credentials_secret", "mlflow_credentials_secret",
                     mode="before")
    @classmethod
    def _empty_is_none(cls, v):
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("stage_service_account", "s3_credentials_secret", "mlflow_credentials_secret")
    @classmethod
    def _object_name(cls, v: str | None, info) -> str | None:
        return None if v is None else check_dns(v, f"object name (ACT_{info.field_name.upper()})")

    @field_validator("s3_endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"'{v}' is not an endpoint URL; write http(s)://host[:port]")
        return v

    @field_validator("default_cpu", "default_memory")
    @classmethod
    def _quantity(cls, v: str, info) -> str:
        if not QUANTITY.match(v):
            raise ValueError(f"'{v}' is not a Kubernetes quantity (ACT_{info.field_name.upper()}); "
                             "write e.g. 500m, 2, 512Mi or 4Gi")
        return v


def _listed(v) -> list[str]:
    """A comma-separated env value (or a list) as its non-empty, stripped items."""
    names = [n.strip() for n in v.split(",")] if isinstance(v, str) else list(v)
    return [n for n in names if n]
