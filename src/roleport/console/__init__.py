"""The web console: the AWS console's IAM role and EC2 instance flows, served as HTML at `/console/`."""

from __future__ import annotations

from roleport.console.routes import build_console

__all__ = ["build_console"]
