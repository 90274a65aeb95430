"""Two people on one task: version checks keep the loser's input; double taps are recorded once; conflicts retry."""

from __future__ import annotations

import json
import threading

import pytest

from gridwatch import services, workflow
from gridwatch.errors import Conflict, StorageError


def _user(store, name):
    return services.current_user(store, services.sign_in(store, name, services.DEMO_PASSWORD).token)


def _reported_task(store):
    inspector = _user(store, "inspector")
    task = services.my_tasks(store, inspector).iloc[0]
    services.work_on(store, inspector, int(task.id), "in_progress")
    services.work_on(store, inspector, int(task.id), "reported", finding=services.findings(task.kind)[0],
                     note="现场已处理")
    return int(task.id)


def test_the_second_verifier_sees_who_was_first_and_keeps_their_input(demo_store):
    task_id = _reported_task(demo_store)
    leader, county = _user(demo_store, "leader"), _user(demo_store, "county")
    seen = workflow.last_event_id(demo_store, task_id)  # both open the report
    services.verify(demo_store, leader, task_id, accept=True, seen_event_id=seen)
    with pytest.raises(Conflict) as caught:
        services.verify(demo_store, county, task_id, accept=False, note="照片不清楚", seen_event_id=seen)
    assert caught.value.params["who"] == "leader" and caught.value.params["state"] == "closed"
    assert demo_store.scalar("SELECT state FROM tasks WHERE id = ?", [task_id]) == "closed"
    kept = services.task_conflicts(demo_store, leader)
    assert len(kept) == 1 and kept.actor.iloc[0] == "county" and kept.wanted_state.iloc[0] == "rejected"
    assert json.loads(kept.detail.iloc[0])["note"] == "照片不清楚" and kept.first_actor.iloc[0] == "leader"
    events = demo_store.query_df("SELECT to_state FROM task_events WHERE task_id = ? ORDER BY id", [task_id])
    assert list(events.to_state)[-2:] == ["verified", "closed"]  # the county's attempt wrote no event


def test_a_double_tap_or_a_resubmit_is_recorded_once(demo_store):
    inspector = _user(demo_store, "inspector")
    task = services.my_tasks(demo_store, inspector).iloc[0]
    services.work_on(demo_store, inspector, int(task.id), "in_progress")
    seen = workflow.last_event_id(demo_store, int(task.id))
    finding = services.findings(task.kind)[0]
    first = services.work_on(demo_store, inspector, int(task.id), "reported", finding=finding, note="一次",
                             seen_event_id=seen, idempotency_key="form-1")
    again = services.work_on(demo_store, inspector, int(task.id), "reported", finding=finding, note="一次",
                             seen_event_id=seen, idempotency_key="form-1")
    assert again["replayed"] and again["finding"] == first["finding"]
    count = demo_store.scalar("SELECT count(*) FROM task_events WHERE task_id = ? AND to_state = 'reported'",
                              [int(task.id)])
    assert count == 1


def test_two_sessions_racing_on_one_task_give_one_event_and_one_kept_conflict(demo_store):
    task_id = _reported_task(demo_store)
    leader, county = _user(demo_store, "leader"), _user(demo_store, "county")
    seen = workflow.last_event_id(demo_store, task_id)
    results: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def act(name, user, accept):
        barrier.wait()
        try:
            results[name] = services.verify(demo_store, user, task_id, accept=accept, note="复核",
                                            seen_event_id=seen)
        except (Conflict, StorageError) as exc:
            results[name] = exc

    threads = [threading.Thread(target=act, args=("leader", leader, True)),
               threading.Thread(target=act, args=("county", county, False))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    failures = [r for r in results.values() if isinstance(r, Exception)]
    assert len(failures) == 1 and isinstance(failures[0], Conflict)
    decided = demo_store.query_df("SELECT to_state FROM task_events WHERE task_id = ? AND id > ?", [task_id, seen])
    assert list(decided.to_state) in (["verified", "closed"], ["rejected"])
    assert demo_store.scalar("SELECT count(*) FROM task_conflicts WHERE task_id = ?", [task_id]) == 1


def test_write_conflicts_are_retried_then_shown(store):
    calls = []

    def always_conflicting():
        calls.append(1)
        raise StorageError("Database error: {detail}", detail="TransactionContext Error: Conflict on update!")

    with pytest.raises(StorageError, match="Others were changing the same records"):
        store.retrying(always_conflicting, attempts=3, pause_s=0)
    assert len(calls) == 3
    flaky = iter([StorageError("Database error: {detail}", detail="Conflict on tuple deletion"), None])

    def once():
        failure = next(flaky)
        if failure:
            raise failure
        return "saved"

    assert store.retrying(once, pause_s=0) == "saved"
    with pytest.raises(StorageError, match="syntax"):  # other failures are not retried
        store.retrying(lambda: store.execute("SELEC 1"), pause_s=0)


@pytest.mark.parametrize("state", ["withdrawn", "closed", "verified", "escalated", "assigned"])
def test_a_worker_cannot_set_states_that_belong_to_others(demo_store, state):
    from gridwatch.errors import InvalidTransition

    inspector = _user(demo_store, "inspector")
    task = services.my_tasks(demo_store, inspector).iloc[0]
    with pytest.raises(InvalidTransition):
        services.work_on(demo_store, inspector, int(task.id), state)
    assert demo_store.scalar("SELECT state FROM tasks WHERE id = ?", [int(task.id)]) == task.state
