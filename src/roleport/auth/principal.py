"""Access key → the principal that owns it, and the secret its signatures must be made with."""

from __future__ import annotations

from roleport.config import Settings
from roleport.context import Principal
from roleport.errors import AwsError


def unknown_key(service: str) -> AwsError:
    # EC2 answers every credential failure with AuthFailure (EC2 error codes page); IAM and STS name the token.
    if service == "ec2":
        return AwsError("AuthFailure", "AWS was not able to validate the provided access credentials", status=401)
    return AwsError("InvalidClientTokenId", "The security token included in the request is invalid.", status=403)


def resolve(settings: Settings, access_key_id: str, service: str) -> tuple[Principal, str]:
    if access_key_id == settings.root_access_key:
        account = settings.account_id
        return Principal(kind="root", arn=f"arn:aws:iam::{account}:root", user_id=account, account_id=account), (
            settings.root_secret_key
        )
    raise unknown_key(service)
