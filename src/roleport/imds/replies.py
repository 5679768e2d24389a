"""What the instance metadata service answers: plain text, listings, flat JSON documents and EC2's error page."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
}
# IMDS answers errors with this page (observed on EC2, e.g. a 404 for a path that does not exist).
_ERROR_PAGE = """<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>{status} - {reason}</title>
 </head>
 <body>
  <h1>{status} - {reason}</h1>
 </body>
</html>
"""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "text/plain"
    headers: tuple[tuple[str, str], ...] = ()


def error(status: int) -> Reply:
    page = _ERROR_PAGE.format(status=status, reason=_REASONS[status])
    return Reply(status, page.encode("latin-1"), "text/html")


def text(value: str) -> Reply:
    return Reply(200, value.encode())


def listing(names: list[str]) -> Reply:
    # "The list items are on separate lines, terminated by line feeds" (EC2 User Guide, instance metadata).
    return text("\n".join(names))


def flat_json(document: Mapping[str, str | None]) -> Reply:
    """A flat document as IMDS pretty-prints it: two-space indents and " : " (e.g. iam/info on EC2). Written out
    here because json.dumps with an indent falls back to its slow pure-Python encoder (a fifth of a fetch)."""
    lines = ",\n".join(f"  {json.dumps(key)} : {json.dumps(value)}" for key, value in document.items())
    return text("{\n" + lines + "\n}")
