"""Audiences, grants and field projections: parsing, who gets which variant, and fan-out through the broker."""

from __future__ import annotations

from typing import Any

import pytest
from wamp_peers import JSON_CODEC, MSGPACK_CODEC, CountingSerializer, Peers, open_channels

from telegraphy.wamp import JSON, Identity, ServerSession, WireCodec, uris
from telegraphy.wamp.audience import (
    ANONYMOUS,
    AUTHENTICATED,
    PUBLIC,
    PUBLIC_VISIBILITY,
    Audience,
    Grants,
    InvalidAudience,
    Visibility,
    grants_of,
)
from telegraphy.wamp.messages import Error, Event, Publish

STAFF = Grants("1", frozenset({"staff"}), frozenset())
CLERK = Grants("2", frozenset(), frozenset({"shop.view_order"}))
USER = Grants("3")
ROOT = Grants("4", superuser=True)


def _event(audience: Any = None, projections: Any = None, **data: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"event_type": "update"}
    if audience is not None:
        meta["audience"] = audience
    if projections is not None:
        meta["projections"] = projections
    return {"name": "shop.Order", "meta": meta, "data": data}


# Parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [(None, PUBLIC), ("public", PUBLIC), ("authenticated", AUTHENTICATED)])
def test_named_audiences(value: Any, expected: Audience) -> None:
    """None and "public" parse to the public audience, "authenticated" to the authenticated one."""
    assert Audience.parse(value) is expected


def test_targeted_audience_keeps_users_groups_permissions_as_strings() -> None:
    """An object audience keeps its users (integers become strings), groups and permissions."""
    audience = Audience.parse({"users": [7, "8"], "groups": ["staff"], "permissions": ["shop.view_order"]})
    assert audience == Audience("targeted", frozenset({"7", "8"}), frozenset({"staff"}), frozenset({"shop.view_order"}))


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("staff", "meta.audience"),
        (5, "meta.audience"),
        ({"roles": ["x"]}, "meta.audience.roles"),
        ({"users": "7"}, "meta.audience.users"),
        ({"groups": [True]}, "meta.audience.groups"),
        ({"permissions": [["a"]]}, "meta.audience.permissions"),
        ({"users": list(range(1001))}, "meta.audience.users"),
    ],
    ids=["unknown-name", "number", "unknown-key", "users-not-list", "bool-entry", "nested-list", "too-many"],
)
def test_invalid_audience_names_the_field(value: Any, field: str) -> None:
    """A malformed audience raises InvalidAudience naming the field that is wrong."""
    with pytest.raises(InvalidAudience) as info:
        Audience.parse(value)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("audience", "allowed"),
    [
        (PUBLIC, {"anonymous", "staff", "clerk", "user", "root"}),
        (AUTHENTICATED, {"staff", "clerk", "user", "root"}),
        (Audience.parse({"groups": ["staff"]}), {"staff", "root"}),
        (Audience.parse({"permissions": ["shop.view_order"]}), {"clerk", "root"}),
        (Audience.parse({"users": [3]}), {"user", "root"}),
        (Audience.parse({"users": [3], "groups": ["staff"]}), {"user", "staff", "root"}),
        (Audience.parse({}), {"root"}),
    ],
    ids=["public", "authenticated", "group", "permission", "user", "any-entry", "empty"],
)
def test_audience_allows(audience: Audience, allowed: set[str]) -> None:
    """A session is in an audience if it matches any entry; superusers are in every non-public one; anonymous only in public."""
    everyone = {"anonymous": ANONYMOUS, "staff": STAFF, "clerk": CLERK, "user": USER, "root": ROOT}
    assert {name for name, grants in everyone.items() if audience.allows(grants)} == allowed


def test_grants_from_token_claims() -> None:
    """A ticket identity's claims become grants; junk entries are ignored; anonymous identities share ANONYMOUS."""
    identity = Identity("7", "user", "ticket", claims={"groups": ["staff", 3, None], "perms": ["a.b", 5], "superuser": "yes"})
    assert grants_of(identity) == Grants("7", frozenset({"staff", "3"}), frozenset({"a.b"}), False)
    assert grants_of(Identity("anonymous", "anonymous", "anonymous")) is ANONYMOUS
    assert grants_of(Identity("8", "user", "ticket", claims={"superuser": True})).superuser


def test_visibility_of_plain_events() -> None:
    """An event without audience or projections has no visibility; one naming only the public audience shares one object."""
    assert Visibility.of_event(_event()) is None
    assert Visibility.of_event({"name": "x"}) is None
    assert Visibility.of_event(_event("public")) is PUBLIC_VISIBILITY


@pytest.mark.parametrize(
    ("projections", "field"),
    [
        ("all", "meta.projections"),
        ([{"audience": "public", "fields": "title"}], "meta.projections[0].fields"),
        ([{"audience": "public", "fields": None}, {"audience": "nobody", "fields": None}], "meta.projections[1].audience"),
        ([{"audience": "public", "only": ["a"]}], "meta.projections[0]"),
        ([{"audience": "public"}] * 17, "meta.projections"),
    ],
    ids=["not-list", "fields-not-list", "bad-audience", "unknown-key", "too-many"],
)
def test_invalid_projections_name_the_field(projections: Any, field: str) -> None:
    """Malformed projections raise InvalidAudience naming the projection and key."""
    with pytest.raises(InvalidAudience) as info:
        Visibility.of_event(_event(projections=projections))
    assert info.value.field == field


def test_variant_is_the_first_matching_projection() -> None:
    """The first projection whose audience matches decides; outside the event's audience, or matching none, means nothing."""
    visibility = Visibility.of_event(
        _event(
            "authenticated",
            [{"audience": {"groups": ["staff"]}, "fields": None}, {"audience": "authenticated", "fields": ["title"]}],
        )
    )
    assert visibility is not None
    assert [visibility.variant(g) for g in (STAFF, ROOT, CLERK, USER, ANONYMOUS)] == [0, 0, 1, 1, None]
    staff_only = Visibility.of_event(_event(projections=[{"audience": {"groups": ["staff"]}, "fields": ["title"]}]))
    assert staff_only is not None
    assert (staff_only.variant(STAFF), staff_only.variant(USER)) == (0, None)


def test_project_strips_control_keys_and_fields() -> None:
    """A projected copy keeps the other meta keys and only the projection's fields; the original is untouched."""
    event = _event("authenticated", [{"audience": "authenticated", "fields": ["title"]}], title="T", secret="S")
    event["meta"]["id"] = "abc"
    visibility = Visibility.of_event(event)
    assert visibility is not None
    projected = visibility.project(event, 0)
    assert projected == {"name": "shop.Order", "meta": {"event_type": "update", "id": "abc"}, "data": {"title": "T"}}
    assert visibility.project(event, -1)["data"] == {"title": "T", "secret": "S"}
    assert "audience" in event["meta"] and event["data"] == {"title": "T", "secret": "S"}


# Through the broker ----------------------------------------------------------------


@pytest.fixture
def peers() -> Peers:
    """A router allowing anonymous sessions; signed-in sessions publish anywhere (a declared channel)."""
    return Peers(channels=open_channels())


def _join(peers: Peers, user: str | None = None, codec: WireCodec = JSON_CODEC, **claims: Any) -> ServerSession:
    return peers.join(codec, user=user, claims=claims or None) if user is not None else peers.join(codec)


def _received(peers: Peers, session: ServerSession) -> list[dict[str, Any]]:
    messages = peers.read(session)
    assert all(isinstance(m, Event) for m in messages), messages
    return [m.args[0] for m in messages]  # type: ignore[attr-defined,index]


def test_sessions_get_what_their_grants_allow(peers: Peers) -> None:
    """For the same HTTP publishes, staff, a permission holder, a plain user and an anonymous session each get their own events."""
    staff = _join(peers, "1", groups=["staff"])
    clerk = _join(peers, "2", perms=["shop.view_order"])
    user = _join(peers, "3")
    anonymous = _join(peers)
    for session in (staff, clerk, user, anonymous):
        peers.subscribe(session, "shop.Order")
    audiences = ["public", "authenticated", {"groups": ["staff"]}, {"permissions": ["shop.view_order"]}, {"users": [3]}]
    for number, audience in enumerate(audiences):
        peers.router.publish_event(_event(audience, n=number))
    sessions = {"staff": staff, "clerk": clerk, "user": user, "anonymous": anonymous}
    got = {name: [e["data"]["n"] for e in _received(peers, s)] for name, s in sessions.items()}
    assert got == {"staff": [0, 1, 2], "clerk": [0, 1, 3], "user": [0, 1, 4], "anonymous": [0]}


def test_projections_give_different_fields_and_never_leak_control_keys(peers: Peers) -> None:
    """Staff get every field, other users the title, anonymous sessions nothing; audience and projections never arrive."""
    staff, user, anonymous = _join(peers, "1", groups=["staff"]), _join(peers, "3"), _join(peers)
    for session in (staff, user, anonymous):
        peers.subscribe(session, "shop.Order")
    projections = [{"audience": {"groups": ["staff"]}, "fields": None}, {"audience": "authenticated", "fields": ["title"]}]
    peers.router.publish_event(_event("authenticated", projections, title="T", total=99))
    [for_staff], [for_user] = _received(peers, staff), _received(peers, user)
    assert (for_staff["data"], for_user["data"]) == ({"title": "T", "total": 99}, {"title": "T"})
    assert _received(peers, anonymous) == []
    for event in (for_staff, for_user):
        assert "audience" not in event["meta"] and "projections" not in event["meta"]
        assert event["meta"]["event_type"] == "update" and "id" in event["meta"]


def test_encoded_once_per_distinct_projection(peers: Peers) -> None:
    """Seven subscribers over three projections and two serializers: one JSON encode per projection, one msgpack encode for its one variant."""
    json_counter, msgpack_counter = CountingSerializer(JSON), CountingSerializer(MSGPACK_CODEC.serializer)
    json_codec, msgpack_codec = WireCodec(json_counter), WireCodec(msgpack_counter)
    sessions = [_join(peers, str(n), json_codec, groups=["staff"]) for n in (1, 2)]
    sessions += [_join(peers, str(n), json_codec) for n in (3, 4, 5)]
    sessions += [_join(peers, None, json_codec), _join(peers, None, msgpack_codec)]
    for session in sessions:
        peers.subscribe(session, "shop.Order")
    projections = [
        {"audience": {"groups": ["staff"]}, "fields": None},
        {"audience": "authenticated", "fields": ["title", "total"]},
        {"audience": "public", "fields": ["title"]},
    ]
    before = (json_counter.encoded, msgpack_counter.encoded)
    peers.router.publish_event(_event(None, projections, title="T", total=9, note="n"))
    assert (json_counter.encoded - before[0], msgpack_counter.encoded - before[1]) == (3, 1)
    frames = [s.data_to_send() for s in sessions]
    assert frames[0][0] is frames[1][0] and frames[2][0] is frames[3][0] is frames[4][0]
    fields = [sorted(json_codec.decode(f[0])[4][0]["data"]) for f in frames[:6]]
    assert fields == [["note", "title", "total"]] * 2 + [["title", "total"]] * 3 + [["title"]]
    assert peers.router.stats.events_delivered == 7


def test_invalid_audience_in_client_publish_is_refused(peers: Peers) -> None:
    """A client PUBLISH of an event with a malformed meta.audience gets ERROR invalid_argument naming the field; nobody gets it."""
    publisher, subscriber = _join(peers, "1"), _join(peers)
    peers.subscribe(subscriber, "shop.Order")
    peers.send(publisher, Publish(5, {"acknowledge": True}, "shop.Order", [_event({"users": "7"})]))
    error = peers.read_one(publisher)
    assert isinstance(error, Error) and error.error == uris.INVALID_ARGUMENT
    assert "meta.audience.users" in error.args[0]  # type: ignore[index]
    assert peers.read(subscriber) == []


def test_pattern_subscribers_are_judged_per_session(peers: Peers) -> None:
    """A prefix subscription shared by staff and a plain user delivers a staff-only event to staff only."""
    staff, user = _join(peers, "1", groups=["staff"]), _join(peers, "3")
    assert peers.subscribe(staff, "shop.", "prefix") == peers.subscribe(user, "shop.", "prefix")
    peers.router.publish_event(_event({"groups": ["staff"]}, n=1))
    peers.router.publish_event(_event(None, n=2))
    assert [e["data"]["n"] for e in _received(peers, staff)] == [1, 2]
    assert [e["data"]["n"] for e in _received(peers, user)] == [2]


# Filters see only what their session receives (issue 11, finding 1) ---------------


def _subscribe_filtered(peers: Peers, session: ServerSession, filter: dict[str, Any], request: int = 1) -> int:
    peers.send(session, [32, request, {"filter": filter}, "hr.Employee"])
    subscribed = peers.read_one(session)
    assert subscribed.TYPE == 33, subscribed
    return subscribed.subscription  # type: ignore[attr-defined,no-any-return]


def _employee(name: str, salary: int, ssn: str) -> dict[str, Any]:
    projections = [{"audience": {"groups": ["hr"]}, "fields": None}, {"audience": "public", "fields": ["name"]}]
    return {"name": "hr.Employee", "meta": {"projections": projections}, "data": {"name": name, "salary": salary, "ssn": ssn}}


def test_a_filter_on_a_hidden_field_never_matches(peers: Peers) -> None:
    """A session whose projection shows only name learns nothing from salary/ssn filters; HR, who sees them, is filtered on them."""
    hr, user, anonymous = _join(peers, "1", groups=["hr"]), _join(peers, "3"), _join(peers)
    for session in (hr, user, anonymous):
        _subscribe_filtered(peers, session, {"salary__gt": 149999}, 1)
        _subscribe_filtered(peers, session, {"ssn__startswith": "123"}, 2)
    peers.router.publish_event(_employee("Bob", 150000, "123-45"))
    peers.router.publish_event(_employee("Ann", 90000, "999-00"))
    assert [e["data"] for e in _received(peers, hr)] == [{"name": "Bob", "salary": 150000, "ssn": "123-45"}] * 2
    assert _received(peers, user) == [] and _received(peers, anonymous) == []


def test_a_filter_on_a_visible_field_still_works_for_a_projected_audience(peers: Peers) -> None:
    """A projected session's filter on a field it receives selects events as usual, and it gets the projected data."""
    user = _join(peers, "3")
    _subscribe_filtered(peers, user, {"name": "Bob"})
    peers.router.publish_event(_employee("Bob", 150000, "123-45"))
    peers.router.publish_event(_employee("Ann", 90000, "999-00"))
    assert [e["data"] for e in _received(peers, user)] == [{"name": "Bob"}]


def test_a_filter_runs_once_per_subscription_and_variant(peers: Peers) -> None:
    """Six subscribers of one filtered subscription over two projection variants: the filter runs twice per event, not six times."""
    sessions = [_join(peers, str(n), groups=["hr"]) for n in (1, 2, 3)] + [_join(peers, str(n)) for n in (4, 5)] + [_join(peers)]
    ids = {_subscribe_filtered(peers, s, {"name__startswith": "B"}) for s in sessions}
    [subscription] = [peers.router.realms["telegraphy"].broker.get(i) for i in ids]
    assert subscription is not None and subscription.predicate is not None
    inner, calls = subscription.predicate, []
    subscription.predicate = lambda data: calls.append(data) or inner(data)  # type: ignore[func-returns-value]
    peers.router.publish_event(_employee("Bob", 150000, "123-45"))
    assert sorted(map(sorted, calls)) == [["name"], ["name", "salary", "ssn"]]
    assert [len(_received(peers, s)) for s in sessions] == [1] * 6


# Projections fail closed on data that is not an object (issue 11, finding 4) -------


@pytest.mark.parametrize("data", [[{"name": "Bob", "salary": 150000}], "Bob", 7, None])
def test_projections_with_fields_need_object_data(data: Any) -> None:
    """An event whose projections name fields but whose data is not an object is invalid, naming data."""
    event = {"name": "hr.Employee", "meta": {"projections": [{"audience": "public", "fields": ["name"]}]}, "data": data}
    with pytest.raises(InvalidAudience) as raised:
        Visibility.of_event(event)
    assert raised.value.field == "data"
    assert "must be an object" in raised.value.detail


def test_projections_without_field_lists_allow_any_data() -> None:
    """Projections that keep every field (fields null) and plain audiences accept array data."""
    for meta in ({"projections": [{"audience": "authenticated", "fields": None}]}, {"audience": "authenticated"}):
        assert Visibility.of_event({"name": "a.b", "meta": meta, "data": [1, 2]}) is not None


def test_client_publish_of_array_data_with_projections_is_refused(peers: Peers) -> None:
    """A client PUBLISH of an event with array data and a field projection gets ERROR invalid_argument naming data; nobody gets it."""
    publisher, subscriber = _join(peers, "1"), _join(peers)
    peers.subscribe(subscriber, "hr.Employee")
    event = {**_employee("Bob", 1, "1"), "data": [{"name": "Bob", "salary": 150000}]}
    peers.send(publisher, Publish(5, {"acknowledge": True}, "hr.Employee", [event]))
    error = peers.read_one(publisher)
    assert isinstance(error, Error) and error.error == uris.INVALID_ARGUMENT
    assert "data" in error.args[0]  # type: ignore[index]
    assert peers.read(subscriber) == []


def test_project_delivers_nothing_to_a_projected_audience_when_data_is_not_an_object(peers: Peers) -> None:
    """Whatever reaches the projector, a projected audience gets no EVENT for array data; an audience that sees every field gets it whole."""
    visibility = Visibility(PUBLIC, ((Audience.parse({"groups": ["hr"]}), None), (PUBLIC, ("name",))))
    event = {"name": "hr.Employee", "meta": {}, "data": [{"name": "Bob", "salary": 150000}]}
    assert visibility.project(event, 1) is None
    hr, anonymous = _join(peers, "1", groups=["hr"]), _join(peers)
    for session in (hr, anonymous):
        peers.subscribe(session, "hr.Employee")
    broker = peers.router.realms["telegraphy"].broker
    assert broker.publish("hr.Employee", 1, [event], None, visibility=visibility) == 1
    assert [e["data"] for e in _received(peers, hr)] == [[{"name": "Bob", "salary": 150000}]]
    assert peers.read(anonymous) == []
