"""Write fencing under real concurrency: two writers, two connections, one run (DESIGN §11).

Each writer has its own engine (its own connections), as separate workers would; they run in threads or
in processes and append at the same time. The store must let only the holder of the current lease
commit, and a writer whose lease was taken over must never commit again.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from runtime_core import FencingError, Lease, RunStartedPayload
from runtime_persistence import SqlRunStore, create_engine
from tests.persistence.support import TTL, draft, new_run


@dataclass
class Outcome:
    committed: int = 0
    fenced: list[FencingError] = field(default_factory=list)


def _marker(name: str, token: int) -> RunStartedPayload:
    return RunStartedPayload(worker=f"{name}:{token}")


async def _append_all(url: str, lease: Lease, name: str, rounds: int, barrier: Any) -> Outcome:
    engine = create_engine(url, busy_timeout_s=30)
    store = SqlRunStore(engine)
    outcome = Outcome()
    try:
        await store.get_run(lease.run_id)  # connect before the start line
        barrier.wait()
        for _ in range(rounds):
            batch = [draft(_marker(name, lease.token)), draft(_marker(name, lease.token))]
            try:
                await store.append(lease, batch)
            except FencingError as error:
                outcome.fenced.append(error)
            else:
                outcome.committed += 1
    finally:
        await store.close()
        engine.dispose()
    return outcome


def _thread_writer(
    url: str, lease: Lease, name: str, rounds: int, barrier: threading.Barrier, out: dict[str, Outcome]
) -> None:
    out[name] = asyncio.run(_append_all(url, lease, name, rounds, barrier))


def _process_writer(url: str, lease_json: str, name: str, rounds: int, barrier: Any, queue: Any) -> None:
    outcome = asyncio.run(_append_all(url, Lease.model_validate_json(lease_json), name, rounds, barrier))
    queue.put((name, outcome.committed, [error.current_token for error in outcome.fenced]))


async def _two_leases(engine: Engine) -> tuple[str, Lease, Lease]:
    store = SqlRunStore(engine)
    try:
        run_id, stale = await new_run(store, owner="writer-a")
        current = await store.acquire_lease(run_id, "writer-b", ttl=TTL, steal=True)
    finally:
        await store.close()
    return run_id, stale, current


async def _log(engine: Engine, run_id: str) -> list[str]:
    store = SqlRunStore(engine)
    try:
        events = await store.read_events(run_id)
    finally:
        await store.close()
    assert [event.seq for event in events] == list(range(1, len(events) + 1)), "seq must stay dense"
    return [event.payload.worker or "" for event in events[1:] if isinstance(event.payload, RunStartedPayload)]


def test_two_writers_racing_in_threads(url: str, engine: Engine) -> None:
    run_id, stale, current = asyncio.run(_two_leases(engine))
    rounds = 25
    barrier = threading.Barrier(2)
    out: dict[str, Outcome] = {}
    threads = [
        threading.Thread(target=_thread_writer, args=(url, stale, "a", rounds, barrier, out)),
        threading.Thread(target=_thread_writer, args=(url, current, "b", rounds, barrier, out)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert out["b"].committed == rounds
    assert out["b"].fenced == []
    assert out["a"].committed == 0
    assert len(out["a"].fenced) == rounds
    assert {error.current_token for error in out["a"].fenced} == {current.token}
    assert set(asyncio.run(_log(engine, run_id))) == {f"b:{current.token}"}


def test_two_writers_racing_in_processes(url: str, engine: Engine) -> None:
    run_id, stale, current = asyncio.run(_two_leases(engine))
    rounds = 20
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    queue = context.Queue()
    processes = [
        context.Process(target=_process_writer, args=(url, lease.model_dump_json(), name, rounds, barrier, queue))
        for name, lease in (("a", stale), ("b", current))
    ]
    for process in processes:
        process.start()
    results = {name: (committed, fenced) for name, committed, fenced in (queue.get(timeout=120) for _ in processes)}
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    queue.close()
    queue.join_thread()
    assert results["b"] == (rounds, [])
    assert results["a"] == (0, [current.token] * rounds)
    assert set(asyncio.run(_log(engine, run_id))) == {f"b:{current.token}"}


def test_takeovers_never_let_a_stale_writer_commit(url: str, engine: Engine) -> None:
    """Three workers keep stealing the run from each other while appending: tokens in the log only grow."""
    run_id = asyncio.run(_two_leases(engine))[0]
    workers, takeovers, batches = 3, 6, 4
    barrier = threading.Barrier(workers)
    fenced: list[tuple[int, int]] = []
    committed: list[int] = []
    lock = threading.Lock()

    async def worker(name: str) -> None:
        own_engine = create_engine(url, busy_timeout_s=30)
        store = SqlRunStore(own_engine)
        try:
            await store.get_run(run_id)
            barrier.wait()
            for _ in range(takeovers):
                lease = await store.acquire_lease(run_id, name, ttl=TTL, steal=True)
                for _ in range(batches):
                    try:
                        await store.append(lease, [draft(_marker(name, lease.token)) for _ in range(3)])
                    except FencingError as error:
                        with lock:
                            fenced.append((lease.token, error.current_token))
                        break
                    with lock:
                        committed.append(lease.token)
        finally:
            await store.close()
            own_engine.dispose()

    threads = [threading.Thread(target=asyncio.run, args=(worker(f"w{i}"),)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    log = asyncio.run(_log(engine, run_id))
    tokens = [int(marker.rsplit(":", 1)[1]) for marker in log]
    assert tokens == sorted(tokens), "a writer committed after its lease was taken over"
    assert len(tokens) == 3 * len(committed)
    for start in range(0, len(log), 3):
        assert len(set(log[start : start + 3])) == 1, "a boundary was split"
    assert committed, "somebody must have committed"
    assert all(current > token for token, current in fenced), "a fenced writer's token is older than the current"
