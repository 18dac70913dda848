"""The platform's policy on what stage pods may run: the images (spec.pod.image) and the
ServiceAccounts (spec.pod.serviceAccountName) an ACTJob may name, as the chart's `policy` values
set them. Pure: the operator checks every ACTJob with it before creating any Job (handlers.py;
clusters without ValidatingAdmissionPolicy), and the chart's admission policy
(templates/admission-policy.yaml) holds the same rule and messages in CEL, so that `kubectl apply`
refuses the ACTJob or ACTExperiment first where the cluster has that API.
tests/unit/test_policy.py checks the two agree.

An unset (or empty) field is always allowed: the operator's own trainer image and stage
ServiceAccount are what the platform installed. An empty list allows anything.
"""

from __future__ import annotations

from collections.abc import Sequence

# An allowed image ending in one of these is a prefix (a registry or path "/", a repository's tags
# ":", its digests "@"); any other is one exact image. So "registry.example.com/ml" never lets
# "registry.example.com/ml-evil/x" through.
PREFIX_ENDS = ("/", ":", "@")


def image_allowed(image: str, allowed: Sequence[str]) -> bool:
    """Whether `image`, as written in the spec (not normalised: "ubuntu" is not "docker.io/library/ubuntu"),
    is one of `allowed` or under one of its prefixes; any image when `allowed` is empty."""
    return not allowed or any(image == a or (a.endswith(PREFIX_ENDS) and image.startswith(a)) for a in allowed)


def service_account_allowed(name: str, allowed: Sequence[str]) -> bool:
    """Whether the ServiceAccount `name` is one of `allowed`; any when `allowed` is empty."""
    return not allowed or name in allowed


def image_refusal(field: str, image: str, allowed: Sequence[str]) -> str:
    return (f"{field}: {image} is not allowed by the platform's policy (allowed images, the chart's "
            f"policy.allowedImages: {', '.join(allowed)}); use one of them (one ending in /, : or @ is a "
            f"prefix), or leave {field} unset for the operator's trainer image")


def service_account_refusal(field: str, name: str, allowed: Sequence[str]) -> str:
    return (f"{field}: {name} is not allowed by the platform's policy (allowed ServiceAccounts, the chart's "
            f"policy.allowedServiceAccounts: {', '.join(allowed)}); name one of them, or leave {field} unset "
            "for the operator's stage ServiceAccount")


def refusals(pod, images: Sequence[str], service_accounts: Sequence[str], path: str = "spec.pod") -> list[str]:
    """What the policy refuses in `pod` (an api.PodSpec at `path`), one line per field, each naming
    the field and the fix; empty when it is allowed."""
    out = []
    if pod.image and not image_allowed(pod.image, images):
        out.append(image_refusal(f"{path}.image", pod.image, images))
    if pod.service_account_name and not service_account_allowed(pod.service_account_name, service_accounts):
        out.append(service_account_refusal(f"{path}.serviceAccountName", pod.service_account_name,
                                           service_accounts))
    return out


def refusal_message(problems: list[str]) -> str:
    """The status message (and Event) of an ACTJob or ACTExperiment the policy refuses."""
    return "refused by the platform's policy: " + "; ".join(problems)
