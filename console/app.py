"""The console's web application: server-rendered pages (Jinja2) with htmx, vendored
in static/, for the parts that refresh or post in place. No build step, no CDN: it
works on a machine without internet access.

Each page handler reads through `Sources` (registry, event log, metrics) or `Caller`
(the gRPC server) and renders one template; `Access` decides who may see or act.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from vahini.console import pages
from vahini.console.access import COOKIE, Access, Refused
from vahini.console.calls import Caller
from vahini.console.sources import Sources

HERE = Path(__file__).parent


def iso(ms: float) -> str:
    """Epoch milliseconds as UTC ISO-8601."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Console:
    """What the handlers share: the sources, the gRPC caller, access and templates."""

    def __init__(self, sources: Sources, caller: Caller, access: Access):
        self.sources, self.caller, self.access = sources, caller, access
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals["refresh_s"] = sources.settings.console.refresh_s
        self.templates.env.filters["iso"] = iso

    def render(self, request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        return self.templates.TemplateResponse(request, template, context, status_code=status)


def build_app(sources: Sources, caller: Caller, access: Access) -> Starlette:
    console = Console(sources, caller, access)

    def page(handler, right: str = "Console.Read"):
        async def endpoint(request: Request) -> Response:
            try:
                visitor = access.visitor(request, right)
            except Refused as refused:
                return _refused(console, request, refused)
            form = dict(await request.form()) if request.method == "POST" else {}
            # Handlers block on the event log, the config store and gRPC: a thread each.
            return await run_in_threadpool(handler, console, request, visitor, form)
        return endpoint

    routes = [
        Route("/", lambda request: RedirectResponse("/registry", 303)),
        Route("/healthz", lambda request: PlainTextResponse("ok")),
        Route("/login", lambda request: _login_form(console, request), methods=["GET"]),
        Route("/login", _login(console), methods=["POST"]),
        Route("/logout", _logout, methods=["POST"]),
        Route("/registry", page(pages.registry)),
        Route("/registry/diff", page(pages.registry_diff)),
        Route("/models", page(pages.models)),
        Route("/models/{name}", page(pages.model)),
        Route("/try", page(pages.try_it)),
        Route("/try/model", page(pages.try_model), methods=["POST"]),
        Route("/try/retrieve", page(pages.try_retrieve), methods=["POST"]),
        Route("/try/history", page(pages.try_history), methods=["POST"]),
        Route("/live", page(pages.live)),
        Route("/live/panel", page(pages.live_panel)),
        Route("/dead-letters", page(pages.dead_letters)),
        Route("/dead-letters/redrive", page(pages.redrive, "Console.Operate"), methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.console = console
    return app


def _refused(console: Console, request: Request, refused: Refused) -> Response:
    if refused.status == 401:
        return console.render(request, "login.html", 401, message=str(refused), next=request.url.path)
    return console.render(request, "refused.html", 403, message=str(refused))


def _login_form(console: Console, request: Request) -> Response:
    return console.render(request, "login.html", message="", next=request.query_params.get("next", "/registry"))


def _login(console: Console):
    async def handler(request: Request) -> Response:
        form = await request.form()
        token, target = str(form.get("token", "")).strip(), str(form.get("next", "/registry"))
        if not token or not console.access.known(token):
            return console.render(request, "login.html", 401, message="unknown token", next=target)
        response = RedirectResponse(target if target.startswith("/") else "/registry", 303)
        # HttpOnly: scripts cannot read it; SameSite=Strict: no other site can post with it (re-drive).
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return response
    return handler


def _logout(request: Request) -> Response:
    response = RedirectResponse("/login", 303)
    response.delete_cookie(COOKIE)
    return response
