"""AWS-shaped errors: every failure that reaches the wire is an AwsError with AWS's code and message."""

from __future__ import annotations

# Status codes of errors that are not modelled in any service's error shapes (AWS common errors, EC2's table).
# Sources: IAM CommonErrors page, EC2 errors-overview page, STS API reference.
COMMON_STATUS: dict[str, int] = {
    "AccessDenied": 403,
    "AccessDeniedException": 403,
    "AuthFailure": 401,
    "DryRunOperation": 412,
    "ExpiredToken": 403,
    "IncompleteSignature": 400,
    "InternalFailure": 500,
    "InvalidAction": 400,
    "InvalidClientTokenId": 403,
    "InvalidParameterCombination": 400,
    "InvalidParameterValue": 400,
    "InvalidQueryParameter": 400,
    "MalformedQueryString": 404,
    "MissingAction": 400,
    "MissingAuthenticationToken": 403,
    "MissingParameter": 400,
    "NotImplemented": 501,
    "OptInRequired": 403,
    "RequestEntityTooLargeException": 413,  # AWS's common errors, shared by every service's API reference
    "RequestExpired": 400,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "Throttling": 400,
    "UnauthorizedOperation": 403,
    "ValidationError": 400,
}


class AwsError(Exception):
    """An error with an AWS error code; the protocol layer picks the HTTP status from the model when not given."""

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    def __repr__(self) -> str:
        return f"AwsError({self.code!r}, {self.message!r}, status={self.status!r})"


def validation_error(messages: list[str]) -> AwsError:
    """AWS's summary form for one or more failed constraints."""
    count = len(messages)
    noun = "error" if count == 1 else "errors"
    return AwsError("ValidationError", f"{count} validation {noun} detected: " + "; ".join(messages), status=400)
