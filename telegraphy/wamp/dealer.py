"""The WAMP dealer: procedure registrations and call routing (WAMP §9 "Remote Procedure Calls").

A CALL to a registered procedure becomes an INVOCATION to its callee; the
callee's YIELD becomes the caller's RESULT and its ERROR the caller's ERROR.
One callee per procedure (``invoke: single``, the basic profile's only
policy). When a callee leaves, its pending calls fail with
``wamp.error.canceled``; when a caller leaves, results for it are dropped.
Procedures under ``wamp.`` are the router's own (:mod:`.meta`): answered at
once, never forwarded. Who may register and call what is decided before the
dealer is asked (:mod:`.channels`); an INVOCATION to a ``backend`` callee
always names the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import meta
from .auth import BACKEND_ROLE
from .errors import ApplicationError, uris
from .messages import Call, Error, Invocation, Result, Yield

if TYPE_CHECKING:
    from .session import ServerSession

__all__ = ["Dealer", "Registration"]


@dataclass(slots=True)
class Registration:
    """A procedure and the session that implements it."""

    id: int
    procedure: str
    callee: ServerSession


@dataclass(slots=True)
class _PendingCall:
    caller: ServerSession
    call_request: int
    callee: ServerSession
    invocation_request: int


class Dealer:
    """Registrations of one realm and the calls in flight.

    Args:
        next_id: returns a fresh router-scope id.
    """

    def __init__(self, next_id: Callable[[], int]) -> None:
        self._next_id = next_id
        self._by_procedure: dict[str, Registration] = {}
        self._by_id: dict[int, Registration] = {}
        # (callee, INVOCATION.Request) -> pending call
        self._pending: dict[tuple[ServerSession, int], _PendingCall] = {}

    @property
    def registrations(self) -> list[Registration]:
        return list(self._by_id.values())

    def get(self, registration_id: int) -> Registration | None:
        return self._by_id.get(registration_id)

    def register(self, session: ServerSession, procedure: str, options: dict[str, Any]) -> Registration:
        """Register ``procedure`` for ``session``.

        Raises:
            ApplicationError: ``procedure_already_exists`` (WAMP §9.1.2), or
                ``option_not_allowed`` for a match or invoke policy other than
                the basic profile's ``exact``/``single``.
        """
        if options.get("match", "exact") != "exact":
            raise ApplicationError(uris.OPTION_NOT_ALLOWED, f"match policy {options['match']!r} is not supported for procedures")
        if options.get("invoke", "single") != "single":
            raise ApplicationError(uris.OPTION_NOT_ALLOWED, f"invocation policy {options['invoke']!r} is not supported")
        if procedure in self._by_procedure:
            raise ApplicationError(uris.PROCEDURE_ALREADY_EXISTS, f"procedure {procedure!r} is already registered")
        registration = Registration(self._next_id(), procedure, session)
        self._by_procedure[procedure] = registration
        self._by_id[registration.id] = registration
        return registration

    def unregister(self, session: ServerSession, registration_id: int) -> Registration:
        """Remove a registration of ``session``.

        Raises:
            ApplicationError: ``no_such_registration``.
        """
        registration = self._by_id.get(registration_id)
        if registration is None or registration.callee is not session:
            raise ApplicationError(uris.NO_SUCH_REGISTRATION, f"registration {registration_id} not found on session {session.id}")
        del self._by_id[registration_id]
        del self._by_procedure[registration.procedure]
        return registration

    def call(self, caller: ServerSession, call: Call) -> None:
        """Route a CALL to its callee as an INVOCATION, or answer a meta procedure.

        Raises:
            ApplicationError: ``no_such_procedure`` (WAMP §9.2.5); for a
                meta procedure, its own errors.
        """
        if call.procedure.startswith("wamp."):
            # WAMP §7.1.2: "wamp." URIs belong to the router, no peer can
            # register one (Router.authorize), so no callee is looked up.
            caller.send(meta.answer(caller, call))
            return
        registration = self._by_procedure.get(call.procedure)
        if registration is None:
            raise ApplicationError(uris.NO_SUCH_PROCEDURE, f"no callee registered for procedure {call.procedure!r}")
        callee = registration.callee
        request = callee.next_request_id()
        details: dict[str, Any] = {}
        if call.options.get("disclose_me") or (callee.identity is not None and callee.identity.authrole == BACKEND_ROLE):
            # Advanced profile, "Caller Identification": on request, and
            # always to a backend callee (the Dealer may disclose by policy),
            # which must know whom it acts for.
            details["caller"] = caller.id
            if caller.identity is not None:
                details["caller_authid"] = caller.identity.authid
                details["caller_authrole"] = caller.identity.authrole
        # Sent first: a payload the callee's serialization cannot carry
        # raises here, and leaves no call pending.
        callee.send(Invocation(request, registration.id, details, call.args, call.kwargs))
        self._pending[(callee, request)] = _PendingCall(caller, call.request, callee, request)

    def yield_(self, callee: ServerSession, message: Yield) -> None:
        """Turn a callee's YIELD into the caller's RESULT.

        A YIELD for an unknown invocation (the caller left, or a wrong id) is
        dropped: WAMP §9.2.3 lets the dealer ignore it.
        """
        pending = self._pending.pop((callee, message.request), None)
        if pending is not None:
            _answer(pending, Result(pending.call_request, {}, message.args, message.kwargs))

    def invocation_error(self, callee: ServerSession, message: Error) -> None:
        """Turn a callee's ERROR for an INVOCATION into the caller's ERROR for its CALL."""
        pending = self._pending.pop((callee, message.request), None)
        if pending is not None:
            _answer(pending, Error(Call.TYPE, pending.call_request, {}, message.error, message.args, message.kwargs))

    def remove_session(self, session: ServerSession, registration_ids: Iterable[int]) -> None:
        """Forget a session that left: its registrations and its calls in flight."""
        for registration_id in list(registration_ids):
            registration = self._by_id.get(registration_id)
            if registration is not None and registration.callee is session:
                del self._by_id[registration_id]
                del self._by_procedure[registration.procedure]
        for key, pending in list(self._pending.items()):
            if pending.callee is session:
                del self._pending[key]
                pending.caller.send(Error(Call.TYPE, pending.call_request, {}, uris.CANCELED, ["the callee left before answering"]))
            elif pending.caller is session:
                del self._pending[key]


def _answer(pending: _PendingCall, message: Result | Error) -> None:
    """Send the callee's answer to the caller, or an ERROR if its payload cannot be carried."""
    try:
        pending.caller.send(message)
    except ApplicationError as exc:
        pending.caller.send(Error(Call.TYPE, pending.call_request, {}, exc.uri, [exc.message]))
