"""Remote procedure calls between sessions of one router: register, call, yield, errors, departures."""

from __future__ import annotations

import pytest
from wamp_peers import JSON_CODEC, MSGPACK_CODEC, Peers, open_channels

from telegraphy.wamp import CLOSE_PROTOCOL_ERROR, ServerSession, SessionState, WireCodec, uris
from telegraphy.wamp.messages import Abort, Call, Error, Invocation, Register, Registered, Result, Unregistered, Yield


@pytest.fixture
def peers() -> Peers:
    """A router allowing anonymous sessions."""
    return Peers(channels=open_channels())


def _register(peers: Peers, callee: ServerSession, procedure: str, request: int = 1) -> int:
    peers.send(callee, Register(request, {}, procedure))
    registered = peers.read_one(callee)
    assert isinstance(registered, Registered) and registered.request == request, registered
    return registered.registration


def _error(peers: Peers, session: ServerSession) -> Error:
    error = peers.read_one(session)
    assert isinstance(error, Error), error
    return error


@pytest.mark.parametrize(
    ("caller_codec", "callee_codec"),
    [(JSON_CODEC, JSON_CODEC), (JSON_CODEC, MSGPACK_CODEC), (MSGPACK_CODEC, JSON_CODEC)],
    ids=["json-json", "json-msgpack", "msgpack-json"],
)
def test_call_invocation_yield_result(peers: Peers, caller_codec: WireCodec, callee_codec: WireCodec) -> None:
    """CALL becomes INVOCATION to the callee; its YIELD becomes the caller's RESULT with args and kwargs."""
    callee = peers.join(callee_codec, user="callee")
    caller = peers.join(caller_codec)  # anonymous sessions may call
    registration = _register(peers, callee, "com.example.add")
    assert registration in callee.registrations
    peers.send(caller, Call(77, {}, "com.example.add", [2, 3], {"round": True}))
    invocation = peers.read_one(callee)
    assert isinstance(invocation, Invocation)
    assert (invocation.registration, invocation.details, invocation.args, invocation.kwargs) == (registration, {}, [2, 3], {"round": True})
    assert peers.read(caller) == []
    peers.send(callee, Yield(invocation.request, {}, [5], {"exact": True}))
    assert peers.read_one(caller) == Result(77, {}, [5], {"exact": True})
    assert peers.read(callee) == []


def test_invocation_request_ids_increase(peers: Peers) -> None:
    """A callee's INVOCATION request ids are its own sequence 1, 2, 3."""
    callee, caller = peers.join(user="c"), peers.join()
    _register(peers, callee, "p")
    for request in (10, 20, 30):
        peers.send(caller, Call(request, {}, "p"))
    requests = [m.request for m in peers.read(callee)]  # type: ignore[attr-defined]
    assert requests == [1, 2, 3]
    for request in reversed(requests):
        peers.send(callee, Yield(request, {}, [request]))
    assert peers.read(caller) == [Result(30, {}, [3]), Result(20, {}, [2]), Result(10, {}, [1])]


def test_result_without_payload(peers: Peers) -> None:
    """A YIELD without args gives a RESULT without args."""
    callee, caller = peers.join(user="c"), peers.join()
    _register(peers, callee, "p")
    peers.send(caller, Call(1, {}, "p"))
    invocation = peers.read_one(callee)
    peers.send(callee, [70, invocation.request, {}])  # type: ignore[attr-defined]
    assert caller.data_to_send() == [b"[50,1,{}]"]


def test_disclose_me_names_the_caller(peers: Peers) -> None:
    """disclose_me puts the caller's session id in INVOCATION details."""
    callee, caller = peers.join(user="c"), peers.join()
    _register(peers, callee, "p")
    peers.send(caller, Call(1, {"disclose_me": True}, "p"))
    invocation = peers.read_one(callee)
    assert isinstance(invocation, Invocation) and invocation.details == {"caller": caller.id, "caller_authid": "anonymous", "caller_authrole": "anonymous"}
    peers.send(caller, Call(2, {}, "p"))
    invocation = peers.read_one(callee)
    assert isinstance(invocation, Invocation) and invocation.details == {}


def test_backend_callees_always_learn_the_caller(peers: Peers) -> None:
    """A backend callee's INVOCATION names the caller (session, authid, authrole) even without disclose_me."""
    backend, caller = peers.join(user="svc", authrole="backend"), peers.join(user="8")
    _register(peers, backend, "app.payments.charge")
    peers.send(caller, Call(1, {}, "app.payments.charge", [100]))
    invocation = peers.read_one(backend)
    assert isinstance(invocation, Invocation)
    assert invocation.details == {"caller": caller.id, "caller_authid": "8", "caller_authrole": "user"}


def test_duplicate_registration(peers: Peers) -> None:
    """Registering a procedure someone already registered gets ERROR procedure_already_exists."""
    first, second = peers.join(user="a"), peers.join(user="b")
    _register(peers, first, "p")
    peers.send(second, Register(4, {}, "p"))
    error = _error(peers, second)
    assert (error.request_type, error.request, error.error) == (Register.TYPE, 4, uris.PROCEDURE_ALREADY_EXISTS)
    peers.send(first, Register(5, {}, "p"))
    assert _error(peers, first).error == uris.PROCEDURE_ALREADY_EXISTS


@pytest.mark.parametrize("options", [{"match": "prefix"}, {"invoke": "roundrobin"}])
def test_unsupported_registration_options(peers: Peers, options: dict[str, str]) -> None:
    """Pattern registrations and shared invocation policies are refused with option_not_allowed."""
    callee = peers.join(user="c")
    peers.send(callee, Register(1, options, "p"))
    assert _error(peers, callee).error == uris.OPTION_NOT_ALLOWED


def test_anonymous_register_refused(peers: Peers) -> None:
    """Anonymous sessions may not register procedures."""
    anonymous = peers.join()
    peers.send(anonymous, Register(1, {}, "p"))
    assert _error(peers, anonymous).error == uris.NOT_AUTHORIZED


def test_register_router_uri_refused(peers: Peers) -> None:
    """Procedures under wamp. belong to the router."""
    callee = peers.join(user="c")
    peers.send(callee, Register(1, {}, "wamp.session.get"))
    assert _error(peers, callee).error == uris.INVALID_URI


def test_callee_error_reaches_caller(peers: Peers) -> None:
    """A callee's ERROR for an INVOCATION reaches the caller as ERROR for its CALL, same URI and payload."""
    callee, caller = peers.join(MSGPACK_CODEC, user="c"), peers.join()
    _register(peers, callee, "p")
    peers.send(caller, Call(12, {}, "p"))
    invocation = peers.read_one(callee)
    peers.send(callee, Error(Invocation.TYPE, invocation.request, {}, "com.example.error.bad_input", ["no"], {"field": "x"}))  # type: ignore[attr-defined]
    assert peers.read_one(caller) == Error(Call.TYPE, 12, {}, "com.example.error.bad_input", ["no"], {"field": "x"})


def test_unknown_procedure(peers: Peers) -> None:
    """Calling a procedure nobody registered gets ERROR no_such_procedure."""
    caller = peers.join()
    peers.send(caller, Call(3, {}, "com.example.missing"))
    error = _error(peers, caller)
    assert (error.request_type, error.request, error.error) == (Call.TYPE, 3, uris.NO_SUCH_PROCEDURE)
    assert error.args == ["no callee registered for procedure 'com.example.missing'"]


def test_unregister(peers: Peers) -> None:
    """UNREGISTER gets UNREGISTERED; later calls get no_such_procedure and the name is free again."""
    callee, caller, other = peers.join(user="c"), peers.join(), peers.join(user="o")
    registration = _register(peers, callee, "p")
    peers.send(callee, [66, 2, registration])
    assert peers.read_one(callee) == Unregistered(2)
    assert callee.registrations == set()
    peers.send(caller, Call(1, {}, "p"))
    assert _error(peers, caller).error == uris.NO_SUCH_PROCEDURE
    _register(peers, other, "p")


def test_unregister_unknown(peers: Peers) -> None:
    """Unregistering an unknown id, or another session's registration, gets no_such_registration."""
    callee, other = peers.join(user="c"), peers.join(user="o")
    registration = _register(peers, callee, "p")
    for session, registration_id in ((callee, 999), (other, registration)):
        peers.send(session, [66, 3, registration_id])
        error = _error(peers, session)
        assert (error.request_type, error.request, error.error) == (66, 3, uris.NO_SUCH_REGISTRATION)


def test_callee_leaves_mid_call(peers: Peers) -> None:
    """When the callee goes away during a call the caller gets ERROR canceled; the procedure is gone."""
    callee, caller = peers.join(user="c"), peers.join()
    _register(peers, callee, "p")
    peers.send(caller, Call(5, {}, "p"))
    peers.send(caller, Call(6, {}, "p"))
    assert len(peers.read(callee)) == 2
    callee.connection_lost()
    errors = peers.read(caller)
    assert [(e.request, e.error) for e in errors] == [(5, uris.CANCELED), (6, uris.CANCELED)]  # type: ignore[attr-defined]
    assert peers.router.counts()["registrations"] == 0
    peers.send(caller, Call(7, {}, "p"))
    assert _error(peers, caller).error == uris.NO_SUCH_PROCEDURE


def test_callee_goodbye_mid_call(peers: Peers) -> None:
    """A callee leaving with GOODBYE also cancels its pending calls."""
    callee, caller = peers.join(user="c"), peers.join()
    _register(peers, callee, "p")
    peers.send(caller, Call(5, {}, "p"))
    peers.read(callee)
    peers.send(callee, [6, {}, uris.CLOSE_NORMAL])
    assert _error(peers, caller).error == uris.CANCELED


def test_caller_leaves_mid_call(peers: Peers) -> None:
    """When the caller goes away, the callee's later YIELD is dropped quietly."""
    callee, caller, bystander = peers.join(user="c"), peers.join(), peers.join()
    _register(peers, callee, "p")
    peers.send(caller, Call(5, {}, "p"))
    invocation = peers.read_one(callee)
    caller.connection_lost()
    peers.send(callee, Yield(invocation.request, {}, ["late"]))  # type: ignore[attr-defined]
    assert peers.read(callee) == []
    assert caller.data_to_send() == [] and peers.read(bystander) == []
    assert callee.state is SessionState.ESTABLISHED


def test_yield_for_unknown_invocation_ignored(peers: Peers) -> None:
    """A YIELD or ERROR for an invocation that does not exist is ignored (WAMP §9.2.3)."""
    callee = peers.join(user="c")
    peers.send(callee, Yield(4242, {}))
    peers.send(callee, Error(Invocation.TYPE, 4242, {}, "com.example.error"))
    assert peers.read(callee) == []
    assert callee.state is SessionState.ESTABLISHED


def test_yield_from_another_session_ignored(peers: Peers) -> None:
    """Only the callee that got the INVOCATION can answer it."""
    callee, caller, intruder = peers.join(user="c"), peers.join(), peers.join(user="i")
    _register(peers, callee, "p")
    peers.send(caller, Call(1, {}, "p"))
    invocation = peers.read_one(callee)
    peers.send(intruder, Yield(invocation.request, {}, ["forged"]))  # type: ignore[attr-defined]
    assert peers.read(caller) == []
    peers.send(callee, Yield(invocation.request, {}, ["real"]))  # type: ignore[attr-defined]
    assert peers.read_one(caller) == Result(1, {}, ["real"])


@pytest.mark.parametrize("request_type", [Call.TYPE, 16, 32, 99])
def test_client_error_for_other_than_invocation(peers: Peers, request_type: int) -> None:
    """A client may only send ERROR for an INVOCATION; anything else is a protocol violation."""
    session = peers.join(user="c")
    peers.send(session, Error(request_type, 1, {}, "com.example.error"))
    abort = peers.read_one(session)
    assert isinstance(abort, Abort) and abort.reason == uris.PROTOCOL_VIOLATION
    assert f"invalid value {request_type} for 'request_type' in ERROR" in abort.details["message"]
    assert session.close_request == (CLOSE_PROTOCOL_ERROR, uris.PROTOCOL_VIOLATION)


def test_call_payload_the_callee_cannot_receive(peers: Peers) -> None:
    """A CALL whose payload the callee's serializer cannot carry gets ERROR invalid_argument and leaves no call pending."""
    callee, caller = peers.join(MSGPACK_CODEC, user="c"), peers.join()
    _register(peers, callee, "p")
    peers.send_raw(caller, "[48,1,{},\"p\",[100000000000000000000000000]]")
    error = _error(peers, caller)
    assert (error.request, error.error) == (1, uris.INVALID_ARGUMENT)
    assert peers.read(callee) == []
    callee.connection_lost()
    assert peers.read(caller) == []  # nothing pending to cancel


def test_result_the_caller_cannot_receive(peers: Peers) -> None:
    """A YIELD whose payload the caller's serializer cannot carry becomes ERROR invalid_argument for the caller."""
    callee, caller = peers.join(user="c"), peers.join(MSGPACK_CODEC)
    _register(peers, callee, "p")
    peers.send(caller, Call(8, {}, "p"))
    invocation = peers.read_one(callee)
    peers.send_raw(callee, f"[70,{invocation.request},{{}},[100000000000000000000000000]]")  # type: ignore[attr-defined]
    error = _error(peers, caller)
    assert (error.request_type, error.request, error.error) == (Call.TYPE, 8, uris.INVALID_ARGUMENT)
    assert callee.state is SessionState.ESTABLISHED
