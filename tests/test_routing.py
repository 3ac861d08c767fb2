"""Routing logic on a deterministic clock, over the Store protocol."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.errors import NotFound, ProtocolError
from server.routing import QueueSettings, Router, RoutingEvent, Status
from server.store import MemoryStore, Store
from tests.conftest import StoreMaker


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


QUEUES = [
    QueueSettings(
        "coffee", offer_timeout_s=15, wrap_up_s=30, max_missed=2, grace_s=120
    ),
    QueueSettings("kettles"),
]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock, make_store: StoreMaker) -> Store:
    return make_store(clock)


@pytest.fixture
def router(store: Store, clock: Clock) -> Router:
    return Router(store, QUEUES, clock)


def offers(router: Router) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    def listen(event: RoutingEvent, data: dict[str, Any]) -> None:
        if event == RoutingEvent.OFFERED:
            seen.append((data["technician"], data["entry"].customer))

    router.listen(listen)
    return seen


async def test_highest_priority_then_longest_waiting_goes_first(
    router: Router, clock: Clock
) -> None:
    seen = offers(router)
    await router.enqueue("coffee", customer="c1", session="s1")
    clock.now += 5
    await router.enqueue("coffee", customer="c2", session="s2", priority=5)
    clock.now += 5
    await router.enqueue("coffee", customer="c3", session="s3", priority=5)
    await router.sign_in("tech-a", queues=["coffee"])
    assert seen == [("tech-a", "c2")]
    assert [e.customer for e in await router.entries("coffee")] == ["c2", "c3", "c1"]


async def test_longest_idle_technician_is_offered_first(
    router: Router, clock: Clock
) -> None:
    seen = offers(router)
    await router.sign_in("tech-b", queues=["coffee"])
    clock.now += 10
    await router.sign_in("tech-a", queues=["coffee"])
    await router.enqueue("coffee", customer="c1", session="s1")
    assert seen == [("tech-b", "c1")]


async def test_required_skills_pick_the_technician(router: Router) -> None:
    seen = offers(router)
    await router.sign_in("tech-en", queues=["coffee"], skills={"lang:en": 5})
    await router.sign_in(
        "tech-hk", queues=["coffee"], skills={"lang:zh-HK": 3, "product:espresso": 2}
    )
    await router.enqueue(
        "coffee",
        customer="c1",
        session="s1",
        skills={"lang:zh-HK": 1, "product:espresso": 2},
    )
    assert seen == [("tech-hk", "c1")]
    nobody = await router.enqueue(
        "coffee", customer="c2", session="s2", skills={"lang:fr": 1}
    )
    assert seen == [("tech-hk", "c1")]  # tech-en is free but does not speak French
    assert (await router.entry(nobody.id)).state == "waiting"


async def test_unanswered_offer_moves_on_and_repeated_misses_set_away(
    router: Router, clock: Clock
) -> None:
    seen = offers(router)
    await router.sign_in("tech-a", queues=["coffee"])
    clock.now += 1
    await router.sign_in("tech-b", queues=["coffee"])
    entry = await router.enqueue("coffee", customer="c1", session="s1")
    assert seen == [("tech-a", "c1")]
    clock.now += 15
    await router.tick()
    assert seen[-1] == ("tech-b", "c1")
    clock.now += 15
    await router.tick()
    # Back to tech-a (the only other one), who now misses a second time.
    assert seen[-1] == ("tech-a", "c1")
    clock.now += 15
    await router.tick()
    presence = await router.presence("tech-a")
    assert presence is not None and presence.status == Status.AWAY
    assert seen[-1] == ("tech-b", "c1")
    await router.accept("tech-b", entry.id)
    assert await router.entries() == []


async def test_accept_finish_wrap_up_then_available(
    router: Router, clock: Clock
) -> None:
    await router.sign_in("tech-a", queues=["coffee"])
    entry = await router.enqueue("coffee", customer="c1", session="s1")
    with pytest.raises(ProtocolError):
        await router.accept("tech-b", entry.id)
    clock.now += 4
    taken = await router.accept("tech-a", entry.id)
    assert taken.session == "s1"
    presence = await router.presence("tech-a")
    assert presence is not None and presence.status == Status.BUSY
    assert presence.sessions_today == 1
    clock.now += 100
    presence = await router.finish("tech-a", "coffee")
    assert presence.status == Status.WRAP_UP
    clock.now += 29
    await router.tick()
    assert (await router.presence("tech-a")).status == Status.WRAP_UP  # type: ignore[union-attr]
    clock.now += 1
    await router.tick()
    assert (await router.presence("tech-a")).status == Status.AVAILABLE  # type: ignore[union-attr]
    figures = await router.figures("coffee")
    assert figures["30m"]["answered"] == 1
    assert figures["30m"]["asa_s"] == 4.0
    assert figures["30m"]["aht_s"] == 100.0
    assert figures["30m"]["service_level"] == 1.0


async def test_estimated_wait_is_none_without_recent_handle_times(
    router: Router, clock: Clock
) -> None:
    await router.sign_in("tech-a", queues=["coffee"], status=Status.AWAY)
    await router.sign_in("tech-b", queues=["coffee"], status=Status.AWAY)
    first = await router.enqueue("coffee", customer="c1", session="s1")
    assert (await router.position(first.id))[0] == 1

    # Two sessions of 120 s each were handled: AHT = 120 s, two staffed technicians.
    for name in ("tech-a", "tech-b"):
        await router.set_status(name, Status.AVAILABLE)
    clock.now += 1
    for entry in list(await router.entries()):
        await router.accept(entry.offered_to, entry.id)
    await router.enqueue("coffee", customer="c2", session="s2")
    for entry in list(await router.entries()):
        await router.accept(entry.offered_to, entry.id)
    clock.now += 120
    await router.finish("tech-a", "coffee")
    await router.finish("tech-b", "coffee")
    await router.enqueue("coffee", customer="c3", session="s3")
    clock.now += 1
    third = await router.enqueue("coffee", customer="c4", session="s4")
    assert await router.position(third.id) == (2, 2 * 120 / 2)


async def test_disconnected_customer_keeps_place_within_grace(
    router: Router, clock: Clock
) -> None:
    first = await router.enqueue("coffee", customer="c1", session="s1")
    clock.now += 1
    second = await router.enqueue("coffee", customer="c2", session="s2")
    await router.disconnected(first.id)
    clock.now += 100
    await router.tick()
    await router.reconnected(first.id)
    assert (await router.position(first.id))[0] == 1
    await router.disconnected(second.id)
    clock.now += 121
    await router.tick()
    with pytest.raises(NotFound):
        await router.entry(second.id)
    figures = await router.figures("coffee")
    assert figures["30m"]["abandoned"] == 1
    assert figures["30m"]["abandon_rate"] == 1.0


async def test_short_abandons_do_not_count_against_service_level(
    router: Router, clock: Clock
) -> None:
    quick = await router.enqueue("coffee", customer="c1", session="s1")
    clock.now += 5
    await router.leave(quick.id)
    slow = await router.enqueue("coffee", customer="c2", session="s2")
    clock.now += 40
    await router.leave(slow.id)
    await router.sign_in("tech-a", queues=["coffee"])
    answered = await router.enqueue("coffee", customer="c3", session="s3")
    clock.now += 10
    await router.accept("tech-a", answered.id)
    figures = (await router.figures("coffee"))["30m"]
    assert figures["service_level"] == 0.5  # 1 within 20 s of (1 answered + 1 late)
    assert figures["abandon_rate"] == round(2 / 3, 3)


async def test_unknown_queue_and_full_queue_are_refused(router: Router) -> None:
    with pytest.raises(NotFound):
        await router.enqueue("toasters", customer="c", session="s")
    small = Router(MemoryStore(), [QueueSettings("tiny", max_waiting=1)])
    await small.enqueue("tiny", customer="c1", session="s1")
    with pytest.raises(ProtocolError) as caught:
        await small.enqueue("tiny", customer="c2", session="s2")
    assert caught.value.code == "busy"


async def test_two_routers_on_one_store_serve_everyone_exactly_once(
    store: Store, clock: Clock
) -> None:
    # Two nodes: each runs a Router over the same Store; technicians and customers
    # are spread over both. Every customer is answered once; no offer is doubled.
    nodes = [Router(store, QUEUES, clock), Router(store, QUEUES, clock)]
    offered: list[tuple[str, str]] = []
    for node in nodes:
        node.listen(
            lambda event, data: (
                offered.append((data["technician"], data["entry"].id))
                if event == RoutingEvent.OFFERED
                else None
            )
        )
    for i in range(5):
        await nodes[i % 2].sign_in(f"tech-{i}", queues=["coffee"], auto_answer=False)
    served: list[str] = []
    for i in range(50):
        clock.now += 1
        await nodes[i % 2].enqueue("coffee", customer=f"c{i}", session=f"s{i}")
    while len(served) < 50:
        await asyncio.gather(*(node.dispatch() for node in nodes))
        for entry in await nodes[0].entries():
            if entry.state == "offered":
                taken = await nodes[len(served) % 2].accept(entry.offered_to, entry.id)
                served.append(taken.customer)
                clock.now += 2
                await nodes[0].finish(entry.offered_to, "coffee")
        clock.now += 31
        await asyncio.gather(*(node.tick() for node in nodes))
    assert sorted(served) == sorted(f"c{i}" for i in range(50))
    assert len(served) == len(set(served))
    entries_offered = [entry for _, entry in offered]
    assert len(entries_offered) == len(set(entries_offered))


def lapses(router: Router) -> list[str]:
    seen: list[str] = []

    def listen(event: RoutingEvent, data: dict[str, Any]) -> None:
        if event == RoutingEvent.LAPSED:
            seen.append(data["entry"].id)

    router.listen(listen)
    return seen


async def _answered(router: Router, name: str, customer: str, session: str) -> Any:
    """The customer, enqueued and accepted by `name` (an Entry)."""
    entry = await router.enqueue("coffee", customer=customer, session=session)
    offered = await router.entry(entry.id)
    assert offered.offered_to == name
    return await router.accept(name, entry.id)


async def test_transfer_to_a_named_technician_offers_only_them(
    router: Router, clock: Clock
) -> None:
    seen = offers(router)
    await router.sign_in("tech-a", queues=["coffee"])
    clock.now += 1
    await router.sign_in("tech-b", queues=["kettles"])
    clock.now += 1
    await router.sign_in("tech-c", queues=["coffee"])
    entry = await _answered(router, "tech-a", "c1", "s1")
    clock.now += 60
    await router.finish("tech-a", "coffee")

    # tech-c serves the queue and is free, but the customer goes to tech-b only,
    # who does not even serve it.
    moved = await router.transfer(entry, "coffee", target="tech-b")
    assert moved.target == "tech-b"
    assert seen[-1] == ("tech-b", "c1")
    await router.accept("tech-b", entry.id)
    presence = await router.presence("tech-b")
    assert presence is not None and presence.status == Status.BUSY
    assert presence.session == "s1"
    # Answered once in the figures, although answered twice.
    assert (await router.figures("coffee"))["30m"]["answered"] == 1

    with pytest.raises(ProtocolError) as caught:
        await router.set_status("tech-c", Status.AWAY)
        await router.transfer(entry, "coffee", target="tech-c")
    assert caught.value.code == "unavailable"


async def test_named_transfer_that_is_declined_lapses_into_the_queue(
    router: Router, clock: Clock
) -> None:
    seen = offers(router)
    lapsed = lapses(router)
    await router.sign_in("tech-a", queues=["coffee"])
    clock.now += 1
    await router.sign_in("tech-b", queues=["coffee"])
    entry = await _answered(router, "tech-a", "c1", "s1")
    await router.finish("tech-a", "coffee")
    await router.set_status("tech-b", Status.AWAY)
    await router.set_status("tech-b", Status.AVAILABLE)
    await router.sign_in("tech-c", queues=["coffee"])
    await router.transfer(entry, "coffee", target="tech-b")
    await router.decline("tech-b", entry.id)
    assert lapsed == [entry.id]
    # Now anyone in the queue may take the customer: tech-c is the free one.
    assert seen[-1] == ("tech-c", "c1")
    assert (await router.entry(entry.id)).target == ""


async def test_named_transfer_to_a_busy_technician_lapses_after_the_wait(
    router: Router, clock: Clock
) -> None:
    lapsed = lapses(router)
    await router.sign_in("tech-a", queues=["coffee"])
    clock.now += 1
    await router.sign_in("tech-b", queues=["coffee"])
    first = await _answered(router, "tech-a", "c1", "s1")
    await _answered(router, "tech-b", "c2", "s2")
    await router.finish("tech-a", "coffee")
    await router.transfer(first, "coffee", target="tech-b")  # tech-b is busy
    clock.now += 59
    await router.tick()
    assert lapsed == [] and (await router.entry(first.id)).target == "tech-b"
    clock.now += 1
    await router.tick()
    assert lapsed == [first.id]
    assert (await router.position(first.id))[0] == 1


async def test_expert_invitation_goes_first_and_is_not_a_waiting_customer(
    router: Router, clock: Clock
) -> None:
    seen = offers(router)
    await router.sign_in("tech-a", queues=["coffee"], skills={"espresso": 1})
    await _answered(router, "tech-a", "c1", "s1")
    waiting = await router.enqueue("coffee", customer="c2", session="s2")
    clock.now += 1
    invite = await router.invite_expert(
        session="s1",
        inviter="tech-a",
        queue="coffee",
        customer="c1",
        skills={"espresso": 3},
    )
    with pytest.raises(ProtocolError):
        await router.invite_expert(session="s1", inviter="tech-a", queue="coffee")
    assert await router.position(waiting.id) == (1, None)
    figures = await router.figures("coffee")
    assert figures["waiting"] == 1

    # A free technician without the skill gets the customer; the one with it
    # gets the invitation although it came later.
    await router.sign_in("tech-b", queues=["coffee"], skills={"espresso": 1})
    assert seen[-1] == ("tech-b", "c2")
    await router.sign_in("tech-x", queues=["coffee"], skills={"espresso": 5})
    assert seen[-1] == ("tech-x", "c1")
    taken = await router.accept("tech-x", invite.id)
    assert taken.expert_for == "tech-a"
    expert = await router.presence("tech-x")
    assert expert is not None and expert.status == Status.BUSY
    assert expert.sessions_today == 0 and expert.session == "s1"
    assert (await router.figures("coffee"))["30m"]["answered"] == 1

    # The expert leaves: available again at once, no handle time counted.
    clock.now += 50
    await router.release("tech-x")
    expert = await router.presence("tech-x")
    assert expert is not None and expert.status == Status.AVAILABLE
    assert (await router.figures("coffee"))["30m"]["aht_s"] is None


async def test_expert_invitation_never_goes_to_the_inviter_and_lapses(
    router: Router, clock: Clock
) -> None:
    seen = offers(router)
    lapsed = lapses(router)
    await router.sign_in("tech-a", queues=["coffee"])
    await _answered(router, "tech-a", "c1", "s1")
    await router.finish("tech-a", "coffee")
    clock.now += 30
    await router.tick()  # tech-a is free again, but it is their own invitation
    invite = await router.invite_expert(session="s1", inviter="tech-a", queue="coffee")
    assert seen[-1] == ("tech-a", "c1")  # only the customer's first offer
    with pytest.raises(ProtocolError):
        await router.invite_expert(
            session="s1", inviter="tech-a", queue="coffee", target="tech-a"
        )
    clock.now += 60
    await router.tick()
    assert lapsed == [invite.id]
    with pytest.raises(NotFound):
        await router.entry(invite.id)
    assert (await router.figures("coffee"))["30m"]["abandoned"] == 0


async def test_named_expert_who_misses_the_offer_lapses_the_invitation(
    router: Router, clock: Clock
) -> None:
    lapsed = lapses(router)
    await router.sign_in("tech-a", queues=["coffee"])
    await _answered(router, "tech-a", "c1", "s1")
    await router.sign_in("tech-b", queues=["kettles"])
    await router.sign_in("tech-c", queues=["coffee"])
    invite = await router.invite_expert(
        session="s1", inviter="tech-a", queue="coffee", target="tech-b"
    )
    assert (await router.entry(invite.id)).offered_to == "tech-b"
    clock.now += 15
    await router.tick()
    assert lapsed == [invite.id]
    presence = await router.presence("tech-c")
    assert presence is not None and presence.status == Status.AVAILABLE
    with pytest.raises(NotFound):
        await router.entry(invite.id)
    await router.cancel(invite.id)  # already gone: nothing happens
