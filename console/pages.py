"""The page handlers: each reads what its page shows and renders its template.
Signature: (console, request, visitor, form) -> Response."""

from __future__ import annotations

import re
import time

from starlette.responses import Response

from vahini.console import dag
from vahini.console.calls import CallFailed
from vahini.consumer_lag import total
from vahini.registry import revisions

TYPES = ("CLICK", "ORDER", "WISHLIST")


def registry(console, request, visitor, form) -> Response:
    current = console.sources.registry()
    wanted = _int(request.query_params.get("revision"), current.revision)
    shown = console.sources.revision(wanted)
    if shown is None:
        return console.render(request, "error.html", 404, visitor=visitor,
                              message=f"no registry revision {wanted}; kept: 1 to {current.revision}")
    return console.render(request, "registry.html", visitor=visitor, registry=shown, latest=current.revision,
                          page="registry")


def registry_diff(console, request, visitor, form) -> Response:
    latest = console.sources.registry().revision
    old_n = _int(request.query_params.get("from"), max(latest - 1, 1))
    new_n = _int(request.query_params.get("to"), latest)
    old, new = console.sources.revision(old_n), console.sources.revision(new_n)
    if old is None or new is None:
        return console.render(request, "error.html", 404, visitor=visitor,
                              message=f"revisions kept are 1 to {latest}; asked for {old_n} and {new_n}")
    changes = [(line, _defined_at(line, old, new)) for line in revisions.differences(old, new)]
    return console.render(request, "registry_diff.html", visitor=visitor, old=old, new=new, latest=latest,
                          changes=changes, page="registry")


def _defined_at(change: str, old, new) -> str:
    """Where what a change line names is defined: in the newer revision, or in the older
    one for what it removed ("" when neither recorded it)."""
    names = re.findall(r"'([^']+)'", change)
    for registry in (new, old):
        found = [registry.source_of("feature", f"{names[0]}.{names[1]}")] if len(names) > 1 else []
        found += [registry.source_of(kind, names[0]) for kind in ("group", "model", "entity", "index") if names]
        place = next((f for f in found if f), "")
        if place:
            return f"{place} (revision {registry.revision})"
    return ""


def models(console, request, visitor, form) -> Response:
    current = console.sources.registry()
    versions = _versions(current)
    return console.render(request, "models.html", visitor=visitor, registry=current, versions=versions,
                          page="models")


def model(console, request, visitor, form) -> Response:
    current = console.sources.registry()
    name = request.path_params["name"]
    graph = current.model(name, _int(request.query_params.get("version"), 0))
    if graph is None:
        return console.render(request, "error.html", 404, visitor=visitor,
                              message=f"no model '{name}' (version {request.query_params.get('version', 'latest')})")
    return console.render(request, "model.html", visitor=visitor, graph=graph, layout=dag.layout(graph),
                          versions=_versions(current).get(name, []), source=current.source_of("model", name),
                          node_w=dag.NODE_W, node_h=dag.NODE_H, page="models")


def try_it(console, request, visitor, form) -> Response:
    current = console.sources.registry()
    return console.render(request, "try.html", visitor=visitor, registry=current, types=TYPES, page="try",
                          chosen=request.query_params.get("model", ""), target=console.caller.target)


def try_model(console, request, visitor, form) -> Response:
    name = str(form.get("model", ""))
    graph = console.sources.registry().models.get(name)
    if graph is None:
        return _call_result(console, request, visitor, error=f"no model '{name}'")
    context = {c: _ids(form.get(f"context.{c}", "")) for c in graph.context}
    return _call(console, request, visitor, lambda token: console.caller.model(token, name, context))


def try_retrieve(console, request, visitor, form) -> Response:
    entity, keys = str(form.get("entity", "")), _ids(form.get("keys", ""))
    groups = _ids(form.get("groups", ""))
    return _call(console, request, visitor, lambda token: console.caller.retrieve(token, entity, keys, groups))


def try_history(console, request, visitor, form) -> Response:
    user, kind = str(form.get("user_id", "")).strip(), str(form.get("type", ""))
    limit = _int(form.get("limit"), 20)
    return _call(console, request, visitor,
                 lambda token: console.caller.history(token, user, [kind] if kind in TYPES else [], limit))


def _call(console, request, visitor, call) -> Response:
    try:
        table = call(visitor.token)
    except CallFailed as exc:
        return _call_result(console, request, visitor, error=str(exc))
    return _call_result(console, request, visitor, table=table)


def _call_result(console, request, visitor, table=None, error: str = "") -> Response:
    return console.render(request, "call_result.html", 200 if table else 422, visitor=visitor, table=table,
                          error=error)


def live(console, request, visitor, form) -> Response:
    return console.render(request, "live.html", visitor=visitor, page="live", **_live_view(console))


def live_panel(console, request, visitor, form) -> Response:
    return console.render(request, "live_panel.html", visitor=visitor, **_live_view(console))


def _live_view(console) -> dict:
    lags = console.sources.lag()
    figures = console.sources.metrics.read()
    return {"lags": lags, "total_lag": total(lags), "figures": figures, "now_s": time.time()}


def dead_letters(console, request, visitor, form) -> Response:
    reason = request.query_params.get("reason", "")
    found = console.sources.dead_letters(reason)
    return console.render(request, "dead_letters.html", visitor=visitor, found=found, reason=reason,
                          page="dead-letters", summary=None)


def redrive(console, request, visitor, form) -> Response:
    if form.get("confirm") != "yes":
        return console.render(request, "error.html", 400, visitor=visitor,
                              message="a re-drive must be confirmed (confirm=yes)")
    summary = console.sources.redrive()
    return console.render(request, "redrive_result.html", visitor=visitor, summary=summary)


def _versions(current) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for (name, version) in current.model_history:
        found.setdefault(name, []).append(version)
    for name, graph in current.models.items():
        found.setdefault(name, []).append(graph.version)
    return {name: sorted(set(v)) for name, v in found.items()}


def _ids(text) -> list[str]:
    return [part.strip() for part in str(text or "").split(",") if part.strip()]


def _int(text, default: int) -> int:
    try:
        return int(str(text))
    except (TypeError, ValueError):
        return default
