"""JobRepository on SQLite and PostgreSQL: state machine, claiming, recovery, listing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from storage import (
    AlreadyExistsError,
    ConflictError,
    Database,
    InvalidArgumentError,
    JobKind,
    JobRepository,
    JobState,
    NotFoundError,
)
from storage import schema as t

SAE, SPEC = JobKind.SAE_TRAINING, JobKind.SPECIALIST_TRAINING
Q, R, X = JobState.QUEUED, JobState.RUNNING, JobState.CANCELLED
C, F = JobState.COMPLETED, JobState.FAILED


@pytest.fixture
def jobs(db: Database) -> JobRepository:
    return JobRepository(db)

T = "t1"


def _job_in(jobs: JobRepository, path: list[JobState]) -> str:
    job_id = jobs.create(SAE, {"layer": 6}, tenant=T).job_id
    for state in path:
        jobs.transition(job_id, state)
    return job_id


def test_create_and_get(jobs: JobRepository) -> None:
    job = jobs.create("sae_training", {"layer": 6, "lr": 1e-4}, tenant=T, job_id="train-1")
    assert (job.state, job.kind, job.progress, job.device) == (Q, SAE, 0.0, None)
    assert jobs.get("train-1") == job
    with pytest.raises(AlreadyExistsError):
        jobs.create(SPEC, {}, tenant=T, job_id="train-1")
    with pytest.raises(InvalidArgumentError):
        jobs.create("cooking", {}, tenant=T)
    with pytest.raises(NotFoundError):
        jobs.get("missing")


@pytest.mark.parametrize(
    "path",
    [[R], [X], [R, C], [R, F], [R, X], [R, Q], [R, Q, R, C], [R, Q, X]],
    ids=lambda p: "->".join(s.value for s in p),
)
def test_legal_transitions(jobs: JobRepository, path: list[JobState]) -> None:
    job_id = _job_in(jobs, path)
    assert jobs.get(job_id).state is path[-1]


@pytest.mark.parametrize(
    "path,target",
    [
        ([], C), ([], F), ([], Q), ([R], R), ([R, C], R), ([R, C], X), ([R, F], Q),
        ([X], R), ([X], X),
    ],  # fmt: skip
    ids=lambda v: "->".join(s.value for s in v) if isinstance(v, list) else v.value,
)
def test_illegal_transitions_raise_and_change_nothing(
    jobs: JobRepository, path: list[JobState], target: JobState
) -> None:
    job_id = _job_in(jobs, path)
    before = jobs.get(job_id)
    with pytest.raises(ConflictError) as err:
        jobs.transition(job_id, target)
    assert (err.value.resource_type, err.value.name) == ("job", job_id)
    assert jobs.get(job_id) == before


def test_transition_of_missing_job_or_bad_state(jobs: JobRepository) -> None:
    with pytest.raises(NotFoundError):
        jobs.transition("missing", R)
    job_id = _job_in(jobs, [])
    with pytest.raises(InvalidArgumentError):
        jobs.transition(job_id, "exploded")


def test_transition_fields(jobs: JobRepository) -> None:
    job_id = _job_in(jobs, [R])
    started = jobs.get(job_id).started_at
    assert started is not None
    jobs.transition(job_id, Q, message="requeued")
    rerun = jobs.transition(job_id, R)
    assert rerun.started_at == started  # the first start is kept across a resume
    done = jobs.transition(job_id, C, result={"sae_path": "/data/sae.pt", "loss": 0.01})
    assert done.result == {"sae_path": "/data/sae.pt", "loss": 0.01}
    assert done.progress == 1.0 and done.completed_at is not None
    assert jobs.get(job_id) == done
    failed = jobs.transition(_job_in(jobs, [R]), F, error="CUDA out of memory")
    assert failed.error == "CUDA out of memory" and failed.completed_at is not None


def test_update_progress_only_while_running(jobs: JobRepository) -> None:
    job_id = _job_in(jobs, [])
    with pytest.raises(ConflictError):
        jobs.update_progress(job_id, 0.1)
    jobs.transition(job_id, R)
    before = jobs.get(job_id)
    updated = jobs.update_progress(job_id, 0.25, message="epoch 5/20", checkpoint_path="/ck/5.pt",
                                   details={"epoch": 5, "loss": 0.5})
    assert (updated.progress, updated.message) == (0.25, "epoch 5/20")
    assert updated.checkpoint_path == "/ck/5.pt"
    assert updated.details == {"epoch": 5, "loss": 0.5}
    assert updated.updated_at > before.updated_at  # doubles as the heartbeat
    kept = jobs.update_progress(job_id, 0.5)
    assert (kept.message, kept.checkpoint_path) == ("epoch 5/20", "/ck/5.pt")
    assert kept.details == {"epoch": 5, "loss": 0.5}
    assert jobs.get(job_id).details == {"epoch": 5, "loss": 0.5}
    with pytest.raises(InvalidArgumentError):
        jobs.update_progress(job_id, 1.5)


def test_request_cancel(jobs: JobRepository) -> None:
    queued = jobs.request_cancel(_job_in(jobs, []))
    assert queued.state is X and queued.completed_at is not None
    assert jobs.request_cancel(queued.job_id) == queued  # repeat is harmless
    running_id = _job_in(jobs, [R])
    flagged = jobs.request_cancel(running_id)
    assert flagged.state is R and flagged.cancel_requested
    assert jobs.update_progress(running_id, 0.3).cancel_requested  # what the worker sees
    assert jobs.transition(running_id, X).state is X
    with pytest.raises(ConflictError):
        jobs.request_cancel(_job_in(jobs, [R, C]))
    # A worker requeueing (e.g. on shutdown) after a cancel request cancels instead.
    pending = _job_in(jobs, [R])
    jobs.request_cancel(pending)
    requeued = jobs.transition(pending, Q)
    assert requeued.state is X and requeued.completed_at is not None
    assert jobs.claim_next(SAE, "cuda:0") is None
    with pytest.raises(NotFoundError):
        jobs.request_cancel("missing")


def test_claim_next_takes_oldest_of_kind(jobs: JobRepository) -> None:
    first = jobs.create(SAE, {"n": 1}, tenant=T).job_id
    other_kind = jobs.create(SPEC, {}, tenant=T).job_id
    second = jobs.create(SAE, {"n": 2}, tenant=T).job_id
    claimed = jobs.claim_next(SAE, "cuda:0")
    assert claimed is not None and claimed.job_id == first
    assert (claimed.state, claimed.device) == (R, "cuda:0") and claimed.started_at is not None
    assert jobs.claim_next("sae_training", "cuda:1").job_id == second
    assert jobs.claim_next(SAE, "cuda:0") is None
    assert jobs.get(other_kind).state is Q


def test_concurrent_claimers_never_share_a_job(jobs: JobRepository, run_threads) -> None:
    ids = {jobs.create(SAE, {"i": i}, tenant=T).job_id for i in range(30)}

    def work(i: int) -> list[str]:
        mine = []
        while (job := jobs.claim_next(SAE, f"cuda:{i}")) is not None:
            mine.append(job.job_id)
        return mine

    claimed = [j for got in run_threads(6, work) for j in got]
    assert len(claimed) == len(set(claimed)) and set(claimed) == ids
    assert {jobs.get(j).state for j in ids} == {R}


def test_claimers_in_separate_processes_never_share_a_job(
    db_url: str, jobs: JobRepository, run_processes
) -> None:
    ids = {jobs.create(SPEC, {"i": i}, tenant=T).job_id for i in range(40)}
    outputs = run_processes([[db_url, "claim", SPEC.value, f"dev{i}"] for i in range(3)])
    claimed = [j for out in outputs for j in json.loads(out)]
    assert len(claimed) == len(set(claimed)) and set(claimed) == ids


def test_recover_interrupted_requeues_or_cancels_running_jobs(jobs: JobRepository) -> None:
    resumable = _job_in(jobs, [R])
    jobs.update_progress(resumable, 0.4, checkpoint_path="/ck/4.pt")
    doomed = _job_in(jobs, [R])
    jobs.request_cancel(doomed)
    untouched = [_job_in(jobs, []), _job_in(jobs, [R, C])]
    other_kind = jobs.create(SPEC, {}, tenant=T).job_id
    jobs.transition(other_kind, R)

    recovered = {j.job_id: j for j in jobs.recover_interrupted(SAE)}
    assert set(recovered) == {resumable, doomed}
    assert recovered[resumable].state is Q and recovered[resumable].checkpoint_path == "/ck/4.pt"
    assert recovered[resumable].progress == 0.4
    assert recovered[doomed].state is X
    assert [jobs.get(j).state for j in untouched] == [Q, C]
    assert jobs.get(other_kind).state is R
    assert jobs.recover_interrupted(SAE) == []
    assert jobs.claim_next(SAE, "cuda:0").job_id in {resumable, untouched[0]}


class FakeClock:
    """Stands in for the repository's clock: time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = t.utcnow()

    def __call__(self):
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def test_recover_interrupted_spares_jobs_with_a_fresh_heartbeat(jobs: JobRepository, monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("storage.jobs.utcnow", clock)
    silent = _job_in(jobs, [R])
    beating = _job_in(jobs, [R])
    clock.advance(minutes=10)
    jobs.update_progress(beating, 0.3)  # a progress report is the heartbeat
    alive = _job_in(jobs, [R])
    clock.advance(seconds=59)
    recovered = jobs.recover_interrupted(SAE, stale_after=timedelta(minutes=1))
    assert [j.job_id for j in recovered] == [silent]
    assert [jobs.get(j).state for j in (silent, beating, alive)] == [Q, R, R]
    clock.advance(seconds=2)  # now both are a minute silent
    assert {j.job_id for j in jobs.recover_interrupted(SAE, stale_after=timedelta(minutes=1))} == {beating, alive}


def test_list_filters_and_pages_newest_first(jobs: JobRepository) -> None:
    sae = [jobs.create(SAE, {"i": i}, tenant=T).job_id for i in range(5)]
    spec = jobs.create(SPEC, {}, tenant=T).job_id
    jobs.transition(sae[0], R)
    seen, token = [], ""
    while True:
        page = jobs.list(kind=SAE, page_size=2, page_token=token)
        seen += [j.job_id for j in page.items]
        if not (token := page.next_page_token):
            break
    assert seen == sae[::-1]
    assert [j.job_id for j in jobs.list().items] == [spec, *sae[::-1]]
    assert [j.job_id for j in jobs.list(state="running").items] == [sae[0]]
    with pytest.raises(InvalidArgumentError):
        jobs.list(kind=SPEC, page_token=jobs.list(kind=SAE, page_size=1).next_page_token)


def test_list_pages_through_identical_timestamps(db: Database, jobs: JobRepository) -> None:
    # Keyset pages must break created_at ties by job_id, or rows at a page edge are skipped.
    jobs.create(SAE, {}, tenant=T, job_id="seed")
    seed = _row_values(jobs.get("seed"))
    with db.session() as s:
        for i in range(5):
            s.add(t.Job(**{**seed, "job_id": f"tie-{i}"}))  # same created_at as the seed
    seen, token = [], ""
    while True:
        page = jobs.list(page_size=2, page_token=token)
        seen += [j.job_id for j in page.items]
        if not (token := page.next_page_token):
            break
    assert seen == ["tie-4", "tie-3", "tie-2", "tie-1", "tie-0", "seed"]


def _row_values(job) -> dict:
    return {**vars(job), "kind": job.kind.value, "state": job.state.value}


def test_claims_carry_an_owner_a_lease_and_a_count(jobs: JobRepository) -> None:
    job_id = jobs.create(SAE, {}, tenant=T).job_id
    claimed = jobs.claim_next(SAE, "cpu", owner="replica-0", lease=timedelta(seconds=30))
    assert (claimed.job_id, claimed.owner, claimed.attempts) == (job_id, "replica-0", 1)
    assert claimed.lease_expires_at > claimed.updated_at
    renewed = jobs.update_progress(job_id, 0.5, owner="replica-0", lease=timedelta(seconds=60))
    assert renewed.lease_expires_at > claimed.lease_expires_at
    done = jobs.transition(job_id, C, owner="replica-0", result={})
    assert (done.owner, done.lease_expires_at) == ("replica-0", None)  # who ran it stays on record


def test_an_expired_lease_is_taken_over_and_the_old_holder_is_fenced_off(jobs: JobRepository, monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("storage.jobs.utcnow", clock)
    job_id = jobs.create(SAE, {}, tenant=T).job_id
    jobs.claim_next(SAE, "cpu", owner="replica-0", lease=timedelta(seconds=20))
    clock.advance(seconds=19)
    assert jobs.recover_interrupted(SAE, expired=True) == []  # still held
    clock.advance(seconds=2)
    (requeued,) = jobs.recover_interrupted(SAE, expired=True)
    assert (requeued.state, requeued.owner) == (Q, None)
    again = jobs.claim_next(SAE, "cpu", owner="replica-1", lease=timedelta(seconds=30))
    assert (again.owner, again.attempts) == ("replica-1", 2)
    for late_write in (lambda: jobs.update_progress(job_id, 0.9, owner="replica-0"),
                       lambda: jobs.transition(job_id, C, owner="replica-0", result={})):
        with pytest.raises(ConflictError, match="lease lost"):
            late_write()
    assert jobs.get(job_id).state is R and jobs.get(job_id).owner == "replica-1"


def test_recovery_at_start_takes_only_this_replicas_jobs(jobs: JobRepository) -> None:
    mine = jobs.create(SAE, {}, tenant=T).job_id
    jobs.claim_next(SAE, "cpu", owner="replica-0", lease=timedelta(seconds=30))
    theirs = jobs.create(SAE, {}, tenant=T).job_id
    jobs.claim_next(SAE, "cpu", owner="replica-1", lease=timedelta(seconds=30))
    assert [r.job_id for r in jobs.recover_interrupted(SAE, owner="replica-0", expired=True)] == [mine]
    assert jobs.get(theirs).state is R
