"""Which AWS services roleport serves, their botocore models, and how a request is matched to one."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import botocore.session
from botocore.model import OperationModel, ServiceModel

SERVICES: tuple[str, ...] = ("iam", "sts", "ec2")


@functools.cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@functools.cache
def service_model(service: str) -> ServiceModel:
    return _session().get_service_model(service)


@functools.cache
def operation_names(service: str) -> frozenset[str]:
    return frozenset(service_model(service).operation_names)


@functools.cache
def operation_model(service: str, name: str) -> OperationModel:
    return service_model(service).operation_model(name)


@functools.cache
def _versions() -> dict[str, str]:
    return {service_model(s).api_version: s for s in SERVICES}


@functools.cache
def modelled_error_status(service: str) -> Mapping[str, int]:
    """HTTP status per error code from the model's error shapes (IAM and STS model theirs; EC2 models none)."""
    statuses: dict[str, int] = {}
    for shape in service_model(service).error_shapes:
        error = shape.metadata.get("error", {})
        statuses[error.get("code", shape.name)] = int(error.get("httpStatusCode", 400))
    return statuses


@functools.cache
def _partition_regions() -> frozenset[str]:
    endpoints = _session().get_component("data_loader").load_data("endpoints")
    return frozenset(next(p for p in endpoints["partitions"] if p["partition"] == "aws")["regions"])


@functools.cache
def signing_regions(service: str, served_region: str) -> frozenset[str]:
    """The regions a request's credential scope may name for `service` at this endpoint, which stands for every
    endpoint of IAM and STS and for EC2's endpoint in the served region. The one place to widen when EC2 serves
    more regions.

    IAM is global and AWS takes only us-east-1 for it, but SDKs pointed at a custom endpoint sign IAM with their
    configured region (botocore 1.44 with endpoint_url and region eu-west-1 signs eu-west-1/iam), and those calls
    reach AWS signed for us-east-1; so any region of the partition is accepted, and a name that is none is not.
    STS answers in every region, each endpoint for its own; EC2 is regional."""
    if service == "ec2":
        return frozenset({served_region})
    return _partition_regions() | {served_region}


def detect(scope_service: str | None, form: Mapping[str, str]) -> str | None:
    """The service a request is for: the SigV4 scope names it; else the API Version; else the Action's owner."""
    if scope_service in SERVICES:
        return scope_service
    version = form.get("Version")
    if version is not None and version in _versions():
        return _versions()[version]
    action = form.get("Action")
    if action:
        for service in SERVICES:
            if action in operation_names(service):
                return service
    return None
