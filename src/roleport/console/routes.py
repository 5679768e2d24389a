"""The web console's ASGI app: its routes under the path it is mounted at (`/console` in app.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from roleport.config import Settings
from roleport.console import views_auth, views_ec2, views_iam
from roleport.console.session import Sessions
from roleport.console.web import Console, Timed, View, endpoint, templates
from roleport.pipeline import Pipeline
from roleport.store.db import Store


def build_console(settings: Settings, store: Store, clock: Callable[[], datetime]) -> Starlette:
    """The console for one server. It keeps nothing in memory but compiled templates and the session key read from
    the store, so any number of server processes on one database serve the same sessions."""
    console = Console(Pipeline(settings, store, clock), Sessions(store, clock), templates())

    def route(path: str, view: View, *, post: bool = False, signed_in: bool = True) -> Route:
        methods = ["GET", "POST"] if post else ["GET"]
        return Route(path, endpoint(console, view, signed_in=signed_in), methods=methods)

    routes = [
        route("/", views_auth.home, signed_in=False),
        route("/signin", views_auth.signin, post=True, signed_in=False),
        Route("/signout", endpoint(console, views_auth.signout), methods=["POST"]),
        route("/iam/roles", views_iam.roles),
        Route("/iam/roles/actions", endpoint(console, views_iam.roles_action), methods=["POST"]),
        route("/iam/roles/{name}", views_iam.role),
        route("/iam/roles/{name}/delete", views_iam.role_delete, post=True),
        route("/iam/create-role", views_iam.create_trust),
        route("/iam/create-role/permissions", views_iam.create_permissions),
        route("/iam/create-role/review", views_iam.create_review, post=True),
        route("/iam/instance-profiles", views_iam.profiles),
        route("/iam/instance-profiles/{name}", views_iam.profile),
        route("/ec2/instances", views_ec2.instances),
        Route("/ec2/instances/actions", endpoint(console, views_ec2.instances_action), methods=["POST"]),
        route("/ec2/instances/{instance_id}/modify-iam-role", views_ec2.modify_role, post=True),
        route("/ec2/launch", views_ec2.launch, post=True),
        route("/{path:path}", views_auth.not_found, signed_in=False),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Timed)])
