"""Waiting for a newer version and watching commits, across two daemons."""
import threading

import numpy as np
import pytest

from modelsync import Commit, DeadlineExceeded, FailedPrecondition


@pytest.fixture(scope="module")
def other_daemon(start_daemon):
    return start_daemon("node-b")


def test_pull_newer_than_waits_for_a_commit_on_another_node(client, other_daemon, namespace):
    with other_daemon.client() as other:
        other.push(namespace, "global", np.zeros(4, dtype=np.float32))
        answers = []
        waiter = threading.Thread(
            target=lambda: answers.append(client.pull(namespace, "global", newer_than=1, wait=60)))
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive(), "nothing newer than version 1 exists yet"

        other.push(namespace, "global", np.ones(4, dtype=np.float32))
        waiter.join(60)
    assert answers[0].version == 2
    np.testing.assert_array_equal(answers[0].value, np.ones(4, dtype=np.float32))


def test_a_wait_without_a_newer_version_raises_deadline_exceeded(client, namespace):
    client.push(namespace, "k", b"x")
    with pytest.raises(DeadlineExceeded, match="newer than 1"):
        client.pull(namespace, "k", newer_than=1, wait=0.3)
    assert client.head(namespace, "k", newer_than=0).version == 1


def test_head_with_a_wait_alone_waits_for_the_key_to_exist(client, namespace):
    timer = threading.Timer(0.3, lambda: client.push(namespace, "late", b"x"))
    timer.start()
    header = client.head(namespace, "late", wait=60)
    timer.join()
    assert header.version == 1


def test_watch_yields_each_commit_with_its_updater(client, other_daemon, namespace):
    client.push(namespace, "start", b"0")
    commits = client.watch(namespace, current=True)
    # The current version comes first: from then on the watch is live.
    assert next(commits) == Commit("start", 1, "node-a")
    with other_daemon.client() as other:
        other.push(namespace, "a", b"1")
        other.push(namespace, "b", b"2")
        other.push(namespace, "a", b"3")

    seen = []
    reader = threading.Thread(target=lambda: seen.extend(next(commits) for _ in range(3)))
    reader.start()
    reader.join(30)
    commits.close()
    assert seen == [Commit("a", 1, "node-b"), Commit("b", 1, "node-b"), Commit("a", 2, "node-b")]


def test_waiting_in_a_legacy_namespace_is_refused(legacy_daemon):
    from conftest import LEGACY_NS
    with legacy_daemon.client() as client:
        with pytest.raises(FailedPrecondition, match="legacy"):
            client.pull(LEGACY_NS, "k", newer_than=0, wait=1)


def test_a_federated_worker_waits_for_the_next_round(client, other_daemon, namespace):
    from modelsync import Federator
    head = Federator(namespace, client=client)
    with other_daemon.client() as other:
        worker = Federator(namespace, client=other)
        worker.submit(np.full(8, 2.0, dtype=np.float32))
        head.aggregate()
        np.testing.assert_array_equal(worker.global_model(wait=60), np.full(8, 2.0, np.float32))

        answers = []
        waiting = threading.Thread(target=lambda: answers.append(worker.global_model(wait=60)))
        waiting.start()
        waiting.join(0.3)
        assert waiting.is_alive(), "the next round has not been aggregated yet"
        worker.submit(np.full(8, 4.0, dtype=np.float32))
        version = head.aggregate()
        waiting.join(60)
    np.testing.assert_array_equal(answers[0], np.full(8, 4.0, np.float32))
    assert worker.global_version == version
