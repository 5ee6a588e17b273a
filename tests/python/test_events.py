"""Rooms, sends and acks (§3 `send`, §4 `ack`, §5), events with seq (§4 `event`, §6), resume after
a cut (§6) and `POST /notify` (§10), from PROTOCOL.md, against the reference server."""

from __future__ import annotations

import re
import time

from wire import http, new_client_id

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def notify(server, **body) -> dict:
    status, reply = http("POST", f"{server.http_url}/notify", body, bearer=server.server_key)
    assert status == 202, (status, reply)
    assert isinstance(reply["delivered"], int), reply
    return reply


def join(wire, send_id: int, room: str) -> dict:
    wire.send({"type": "send", "id": send_id, "event": "join_room", "data": {"room": room}})
    ack = wire.recv_ack(send_id)
    assert ack["ok"] is True, ack
    return ack


def durable(frames):
    """The events among `frames` that carry a seq."""
    return [f for f in frames if f["type"] == "event" and "seq" in f]


def test_notify_needs_the_server_key_and_exactly_one_target(server, user):
    url = f"{server.http_url}/notify"
    body = {"user": user, "event": "e", "data": {}}
    assert http("POST", url, body)[0] == 401
    assert http("POST", url, body, bearer="wrong")[0] == 401
    both = {"user": user, "room": "chat:1", "event": "e"}
    assert http("POST", url, both, bearer=server.server_key)[0] == 400
    assert http("POST", url, b"not json", bearer=server.server_key)[0] == 400
    assert http("POST", url, body, bearer=server.server_key) == (202, {"delivered": 0})


def test_health_answers_ok(server):
    status, body = http("GET", f"{server.http_url}/health")
    assert status == 200 and body["status"] == "ok", body


def test_notified_events_arrive_in_order_with_seq_1_2_3(server, user):
    wire, _ = server.authed(user)
    for i in range(3):
        assert notify(server, user=user, event="new_notification", data={"id": f"n{i}"}) == {
            "delivered": 1
        }
    events = [wire.recv_event("new_notification") for _ in range(3)]
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert [e["data"] for e in events] == [{"id": "n0"}, {"id": "n1"}, {"id": "n2"}]
    for event in events:
        if "ts" in event:
            assert RFC3339.match(event["ts"]), event


def test_a_message_is_acked_with_its_id_and_fanned_out_to_the_room(server, room):
    alice, _ = server.authed("alice-" + room[-6:])
    bob, _ = server.authed("bob-" + room[-6:])
    join(bob, 1, room)
    join(alice, 1, room)
    chat_id = room.removeprefix("chat:")
    alice.send({"type": "send", "id": 2, "event": "message",
                "data": {"chat_id": chat_id, "text": "hi"}})
    ack = alice.recv_ack(2)
    assert ack["ok"] is True and isinstance(ack["data"]["id"], str), ack
    message = bob.recv_event("new_message")
    assert message["data"]["chat_id"] == chat_id
    assert message["data"]["from"] == "alice-" + room[-6:]
    assert message["data"]["text"] == "hi"
    assert message["data"]["id"] == ack["data"]["id"]
    assert RFC3339.match(message["data"]["ts"]), message


def test_the_first_durable_event_of_a_session_has_seq_1(server, room):
    # Bob is in the room first, so alice joining tells him `user_joined`: volatile (§10), no
    # seq. The message after it is bob's first durable event: seq 1.
    alice, _ = server.authed("alice-" + room[-6:])
    bob, _ = server.authed("bob-" + room[-6:])
    join(bob, 1, room)
    join(alice, 1, room)
    alice.send({"type": "send", "id": 2, "event": "message",
                "data": {"chat_id": room.removeprefix("chat:"), "text": "first"}})
    message = bob.recv_event("new_message")
    assert message["seq"] == 1, message


def test_membership_events_are_volatile(server, room):
    alice, _ = server.authed("alice-" + room[-6:])
    bob, _ = server.authed("bob-" + room[-6:])
    join(bob, 1, room)
    join(alice, 1, room)
    joined = bob.recv_event("user_joined")
    assert joined["data"] == {"room": room, "user": "alice-" + room[-6:]}
    assert "seq" not in joined, f"user_joined is volatile (§10) but carries a seq: {joined}"


def test_a_resent_send_id_gets_the_same_ack_and_is_not_processed_again(server, room):
    alice, _ = server.authed("alice-" + room[-6:])
    bob, _ = server.authed("bob-" + room[-6:])
    join(bob, 1, room)
    join(alice, 1, room)
    send = {"type": "send", "id": 7, "event": "message",
            "data": {"chat_id": room.removeprefix("chat:"), "text": "once"}}
    alice.send(send)
    first = alice.recv_ack(7)
    alice.send(send)
    again = alice.recv_ack(7)
    assert again == first
    assert bob.recv_event("new_message")["data"]["text"] == "once"
    assert [f for f in bob.quiet(0.5) if f.get("event") == "new_message"] == []


def test_send_ids_are_deduped_across_sessions_of_the_same_client(server, room):
    # §5: dedupe is per (user, client), "from any socket or session of the same (user, client)".
    client = new_client_id()
    alice, _ = server.authed("alice-" + room[-6:], client=client)
    bob, _ = server.authed("bob-" + room[-6:])
    join(bob, 1, room)
    join(alice, 1, room)
    send = {"type": "send", "id": 2, "event": "message",
            "data": {"chat_id": room.removeprefix("chat:"), "text": "exactly once"}}
    alice.send(send)
    first = alice.recv_ack(2)
    assert bob.recv_event("new_message")["data"]["text"] == "exactly once"
    alice.close()
    # A new session (no resume), same client id: the resend is answered, not processed.
    again, hello = server.authed("alice-" + room[-6:], client=client)
    assert hello["resumed"] is False
    again.send(send)
    assert again.recv_ack(2) == first
    assert [f for f in bob.quiet(0.5) if f.get("event") == "new_message"] == []


def test_an_unknown_event_is_acked_with_an_error(server, user):
    wire, _ = server.authed(user)
    wire.send({"type": "send", "id": 1, "event": "no_such_event", "data": {}})
    ack = wire.recv_ack(1)
    assert ack["ok"] is False and ack["error"]["code"] == "unknown_event", ack
    assert isinstance(ack["error"]["message"], str)


def test_a_send_without_data_is_a_send_with_null_data(server, user):
    wire, _ = server.authed(user)
    wire.send({"type": "send", "id": 1, "event": "get_unread_count"})
    ack = wire.recv_ack(1)
    assert ack["ok"] is True and isinstance(ack["data"]["count"], int), ack


def test_after_a_cut_resume_replays_the_missed_events_in_order_before_new_ones(server, user):
    wire, hello = server.authed(user)
    for i in range(2):
        notify(server, user=user, event="new_notification", data={"i": i})
    assert [wire.recv_event("new_notification")["seq"] for _ in range(2)] == [1, 2]
    wire.send({"type": "ack", "seq": 2})
    wire.cut()
    for i in range(2, 5):
        notify(server, user=user, event="new_notification", data={"i": i})

    back = server.wire()
    frame = back.auth(server.token(user), resume={"session": hello["session"], "seq": 2})
    assert frame["type"] == "authenticated", frame
    assert frame["resumed"] is True and frame["session"] == hello["session"], frame
    assert frame.get("missed") == 3, frame
    replay = [back.recv() for _ in range(3)]
    assert [(f["type"], f.get("seq"), f["data"]["i"]) for f in replay] == [
        ("event", 3, 2), ("event", 4, 3), ("event", 5, 4)
    ], replay
    notify(server, user=user, event="new_notification", data={"i": 5})
    assert back.recv_event("new_notification")["seq"] == 6


def test_rooms_carry_over_on_resume(server, room, user):
    wire, hello = server.authed(user)
    join(wire, 1, room)
    wire.cut()
    notify(server, room=room, event="announce", data="during")
    back = server.wire()
    frame = back.auth(server.token(user), resume={"session": hello["session"], "seq": 0})
    assert frame["resumed"] is True, frame
    assert back.recv_event("announce")["data"] == "during"
    notify(server, room=room, event="announce", data="after")
    assert back.recv_event("announce")["data"] == "after"


def test_resuming_a_session_still_attached_closes_the_old_socket_with_1000(server, user):
    old, hello = server.authed(user)
    new = server.wire()
    frame = new.auth(server.token(user), resume={"session": hello["session"], "seq": 0})
    assert frame["resumed"] is True, frame
    assert old.closed().code == 1000


def test_an_unknown_session_is_not_resumed_and_a_new_one_starts(server, user):
    wire = server.wire()
    frame = wire.auth(server.token(user), resume={"session": "no-such-session", "seq": 0})
    assert frame["type"] == "authenticated" and frame["resumed"] is False, frame
    assert frame["session"] != "no-such-session"


def test_another_users_session_is_not_resumed_and_its_socket_is_untouched(server, user):
    owner, hello = server.authed(user)
    thief = server.wire()
    frame = thief.auth(server.token(user + "-other"), resume={"session": hello["session"], "seq": 0})
    assert frame["resumed"] is False and frame["session"] != hello["session"], frame
    notify(server, user=user, event="still_here", data={})
    assert owner.recv_event("still_here")["seq"] == 1


def test_a_resume_seq_ahead_of_the_server_is_not_resumed(server, user):
    wire, hello = server.authed(user)
    notify(server, user=user, event="one", data={})
    assert wire.recv_event("one")["seq"] == 1
    wire.cut()
    back = server.wire()
    frame = back.auth(server.token(user), resume={"session": hello["session"], "seq": 99})
    assert frame["resumed"] is False and frame["session"] != hello["session"], frame


def test_a_new_session_after_a_failed_resume_has_only_the_users_own_room(server, user, room):
    wire, hello = server.authed(user)
    join(wire, 1, room)
    wire.close()
    fresh = server.wire()
    frame = fresh.auth(server.token(user), resume={"session": hello["session"], "seq": 99})
    assert frame["resumed"] is False, frame
    notify(server, room=room, event="room_only", data={})
    notify(server, user=user, event="user_only", data={})
    got = fresh.recv_until(lambda f: f["type"] == "event" and f["event"] in ("room_only", "user_only"))
    assert got["event"] == "user_only", got
    assert durable(fresh.quiet(0.3)) == []
