"""Who may use the console: the callers of the serving tokens file (serving.auth).

A caller needs `Console.Read` (or `Console.*`, or `*`) to see the pages and
`Console.Operate` to act. A browser signs in once with its token, which is kept
in an HttpOnly cookie; scripts send `Authorization: Bearer <token>`. Without a
tokens file the console is open, like the gRPC port, and listens on loopback by
default. No token, or an unknown one: 401. A known token without the right: 403.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from vahini.serving.auth import Caller, CallerTable

COOKIE = "vahini_console_token"
READ, OPERATE = "Console.Read", "Console.Operate"


@dataclass(frozen=True)
class Visitor:
    name: str
    token: str | None  # forwarded to the gRPC server by `Try it`, so its own rights apply
    may_operate: bool


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Access:
    def __init__(self, callers: CallerTable | None):
        self._callers = callers

    @property
    def open(self) -> bool:
        return self._callers is None

    def visitor(self, request: Request, right: str = READ) -> Visitor:
        """The signed-in caller if it has `right`; raise Refused (401 or 403) if not."""
        token = _token_of(request)
        if self._callers is None:
            return Visitor("anyone (no tokens file)", token, True)
        if not token:
            raise Refused(401, "sign in with a caller's token")
        caller = self._callers.caller(token)
        if caller is None:
            raise Refused(401, "unknown token")
        if not _may(caller, right):
            raise Refused(403, f"caller '{caller.name}' lacks {right}")
        return Visitor(caller.name, token, _may(caller, OPERATE))

    def known(self, token: str) -> bool:
        return self._callers is None or self._callers.caller(token) is not None


def _may(caller: Caller, right: str) -> bool:
    return caller.may_call(right) or (right == READ and caller.may_call(OPERATE))


def _token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.cookies.get(COOKIE) or None
