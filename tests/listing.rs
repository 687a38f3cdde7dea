//! Listing a workflow's requests and counting them by status, every case on both engines (see
//! `tests/support/engines.rs`): filters by status and creation time, paging through more than
//! a thousand requests, counts that follow pause, resume, stop and failure, and dead letters.
//!
//! Each case's workflows are its own (each Redis variant runs under a key prefix of its own,
//! and each embedded variant on an engine of its own), so a case sees only its own requests.

mod support;

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use goflow::prelude::*;
use goflow::redis::RedisEngineBuilder;
use goflow::request::{Control, RequestPage, RequestQuery, RequestStatus, Selection};
use goflow::{Engine, Error, RequestId};
use support::engines::{conformance, final_state, until};
use tokio::sync::Notify;

/// A bound against hanging forever, never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(20);

fn register_all(builder: RedisEngineBuilder) -> RedisEngineBuilder {
    builder
        .register::<Numbers>()
        .register::<Windows>()
        .register::<Held>()
        .register::<Ties>()
        .register::<Rejects>()
}

/// Fails numbers over 9 after one retry; keeps the others.
#[node(retries = 1, backoff = "1ms")]
async fn small_only(n: u32) -> Result<u32, NodeError> {
    if n > 9 {
        return Err(NodeError::new(format!("{n} is too big")));
    }
    Ok(n)
}

workflow! {
    pub Rejects = small_only;
}

/// Fails odd numbers, for good.
#[node]
async fn even_only(n: u32) -> Result<u32, NodeError> {
    if n % 2 == 1 {
        return Err(NodeError::permanent(format!("{n} is odd")));
    }
    Ok(n)
}

workflow! {
    pub Numbers = even_only;
}

#[node]
async fn window(n: u32) -> u32 {
    n
}

workflow! {
    pub Windows = window;
}

#[node]
async fn tie(n: u32) -> u32 {
    n
}

workflow! {
    pub Ties = tie;
}

/// Requests whose `hold` runs until the case lets them go, by request id.
static RELEASED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);
static RELEASE: LazyLock<Notify> = LazyLock::new(Notify::new);

fn release(id: &RequestId) {
    RELEASED.lock().unwrap().insert(id.to_string());
    RELEASE.notify_waiters();
}

#[node]
async fn hold(ctx: Context, n: u32) -> u32 {
    let id = ctx.request_id().to_string();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let notified = RELEASE.notified();
            if RELEASED.lock().unwrap().contains(&id) {
                return;
            }
            notified.await;
        }
    })
    .await
    .expect("the case never released the request");
    n
}

#[node]
async fn after_hold(n: u32) -> u32 {
    n
}

workflow! {
    pub Held = hold -> after_hold;
}

/// Every page of the list `query` selects, walked with the cursors, concatenated.
async fn every_page<W: goflow::Workflow>(
    engine: &impl Engine,
    query: RequestQuery,
) -> Vec<goflow::request::RequestSummary> {
    let mut all = Vec::new();
    let mut query = query;
    loop {
        let RequestPage {
            requests,
            next_cursor,
            ..
        } = engine.list::<W>(&query).await.expect("list");
        assert!(
            requests.len() <= query.limit,
            "a page holds at most `limit`"
        );
        all.extend(requests);
        match next_cursor {
            Some(cursor) => query = query.after(cursor),
            None => return all,
        }
    }
}

/// Whether `list` is newest first: creation times never increase, ids descend within one.
fn newest_first(list: &[goflow::request::RequestSummary]) -> bool {
    list.windows(2).all(|pair| {
        (pair[0].created_at_ms, &pair[0].request_id) > (pair[1].created_at_ms, &pair[1].request_id)
    })
}

conformance! {
    /// 1,100 requests, every other one failing: each status lists exactly its requests,
    /// newest first, through pages of several sizes, and the counts agree.
    fn filters_and_pages_through_a_thousand_requests(engine) {
        let mut failed = HashSet::new();
        let mut completed = HashSet::new();
        let mut ids = Vec::new();
        for n in 0..1_100u32 {
            let id = engine.submit::<Numbers>(&n).await.expect("submit");
            if n % 2 == 1 {
                failed.insert(id.clone());
            } else {
                completed.insert(id.clone());
            }
            ids.push(id);
        }
        for id in &ids {
            final_state::<Numbers>(engine, id).await;
        }

        let counts = engine.counts::<Numbers>().await.expect("counts");
        assert_eq!(counts.get(RequestStatus::Failed), 550);
        assert_eq!(counts.get(RequestStatus::Completed), 550);
        assert_eq!(counts.total(), 1_100);

        for limit in [500, 137] {
            let query = RequestQuery::new().status(RequestStatus::Failed).limit(limit);
            let listed = every_page::<Numbers>(engine, query).await;
            assert!(newest_first(&listed));
            let listed_ids: HashSet<RequestId> =
                listed.iter().map(|r| r.request_id.clone()).collect();
            assert_eq!(listed.len(), 550, "no request twice");
            assert_eq!(listed_ids, failed);
            for request in &listed {
                assert_eq!(request.status, RequestStatus::Failed);
                let failure = request.failure.as_ref().expect("a failed request's failure");
                assert_eq!(failure.vertex, "even_only");
                assert!(request.ended_at_ms >= Some(request.created_at_ms));
            }
        }

        // Every status, in one list.
        let everything = every_page::<Numbers>(engine, RequestQuery::new().limit(500)).await;
        assert_eq!(everything.len(), 1_100);
        assert!(newest_first(&everything));
        let both = every_page::<Numbers>(
            engine,
            RequestQuery::new()
                .status(RequestStatus::Completed)
                .status(RequestStatus::Failed)
                .limit(333),
        )
        .await;
        assert_eq!(both, everything);
        let completed_listed: HashSet<RequestId> = every_page::<Numbers>(
            engine,
            RequestQuery::new().status(RequestStatus::Completed),
        )
        .await
        .into_iter()
        .map(|r| {
            assert!(r.failure.is_none());
            r.request_id
        })
        .collect();
        assert_eq!(completed_listed, completed);

        // The first page is the newest.
        let first = engine.list::<Numbers>(&RequestQuery::new().limit(3)).await.expect("list");
        assert_eq!(first.requests[..], everything[..3]);
        assert!(first.next_cursor.is_some());
        // No such status among them: an empty last page.
        let running = engine
            .list::<Numbers>(&RequestQuery::new().status(RequestStatus::Running))
            .await
            .expect("list");
        assert!(running.requests.is_empty());
        assert_eq!(running.next_cursor, None);
    }

    /// `since` (included) and `until` (excluded) select by creation time.
    fn a_time_window_selects_by_creation(engine) {
        let mut early = Vec::new();
        for n in 0..5u32 {
            early.push(engine.submit::<Windows>(&n).await.expect("submit"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut late = Vec::new();
        for n in 5..10u32 {
            late.push(engine.submit::<Windows>(&n).await.expect("submit"));
        }
        for id in early.iter().chain(&late) {
            final_state::<Windows>(engine, id).await;
        }
        let everything = every_page::<Windows>(engine, RequestQuery::new()).await;
        assert_eq!(everything.len(), 10);
        // The first creation time of the late ones: the early ones were all created before.
        let split = everything
            .iter()
            .filter(|r| late.contains(&r.request_id))
            .map(|r| r.created_at_ms)
            .min()
            .expect("the late requests are listed");
        let ids = |list: Vec<goflow::request::RequestSummary>| -> HashSet<RequestId> {
            list.into_iter().map(|r| r.request_id).collect()
        };
        let since = every_page::<Windows>(engine, RequestQuery::new().since_ms(split)).await;
        assert_eq!(ids(since), late.iter().cloned().collect());
        let before = every_page::<Windows>(engine, RequestQuery::new().until_ms(split)).await;
        assert_eq!(ids(before), early.iter().cloned().collect());
        let none = every_page::<Windows>(
            engine,
            RequestQuery::new().since_ms(split).until_ms(split),
        )
        .await;
        assert!(none.is_empty());
    }

    /// Requests created in the same millisecond page in id order, none lost or repeated at a
    /// page's edge.
    fn pages_split_a_millisecond_cleanly(engine) {
        // Fixed ids submitted back to back: many share a creation millisecond.
        let mut ids = HashSet::new();
        for n in 0..60u32 {
            let id = RequestId::parse(&format!("tie-{n:02}")).unwrap();
            engine.submit_as::<Ties>(id.clone(), &n).await.expect("submit");
            ids.insert(id);
        }
        for id in &ids {
            final_state::<Ties>(engine, id).await;
        }
        for limit in [1, 2, 7] {
            let listed = every_page::<Ties>(engine, RequestQuery::new().limit(limit)).await;
            assert!(newest_first(&listed));
            let listed: HashSet<RequestId> = listed.into_iter().map(|r| r.request_id).collect();
            assert_eq!(listed, ids, "pages of {limit}");
        }
    }

    /// The counts and the lists follow a request through running, paused, resumed and
    /// stopped, and through completed.
    fn counts_follow_each_change_of_status(engine) {
        let id = engine.submit::<Held>(&1).await.expect("submit");
        let other = engine.submit::<Held>(&2).await.expect("submit");
        for id in [&id, &other] {
            until::<Held>(engine, id, "it runs", |s| s.status == RequestStatus::Running).await;
        }
        let counts = engine.counts::<Held>().await.expect("counts");
        assert_eq!(counts.get(RequestStatus::Running), 2);
        assert_eq!(counts.total(), 2);

        assert_eq!(engine.pause::<Held>(&id).await.expect("pause"), RequestStatus::Paused);
        let counts = engine.counts::<Held>().await.expect("counts");
        assert_eq!(
            (counts.get(RequestStatus::Running), counts.get(RequestStatus::Paused)),
            (1, 1)
        );
        let paused = engine
            .list::<Held>(&RequestQuery::new().status(RequestStatus::Paused))
            .await
            .expect("list");
        assert_eq!(paused.requests.len(), 1);
        assert_eq!(paused.requests[0].request_id, id);
        assert_eq!(paused.requests[0].ended_at_ms, None);

        assert_eq!(engine.resume::<Held>(&id).await.expect("resume"), RequestStatus::Running);
        assert_eq!(engine.stop::<Held>(&other).await.expect("stop"), RequestStatus::Stopped);
        release(&id);
        final_state::<Held>(engine, &id).await;
        final_state::<Held>(engine, &other).await;
        let counts = engine.counts::<Held>().await.expect("counts");
        assert_eq!(counts.get(RequestStatus::Completed), 1);
        assert_eq!(counts.get(RequestStatus::Stopped), 1);
        assert_eq!(counts.total(), 2);
        let stopped = engine
            .list::<Held>(&RequestQuery::new().status(RequestStatus::Stopped))
            .await
            .expect("list");
        assert_eq!(stopped.requests.len(), 1);
        assert_eq!(stopped.requests[0].request_id, other);
        assert!(stopped.requests[0].ended_at_ms.is_some());
        release(&other);
    }

    /// Each request that fails for good leaves one dead letter, newest first, paged; a
    /// request that completes leaves none.
    fn dead_letters_name_each_failure(engine) {
        let mut failed = Vec::new();
        for n in 5..15u32 {
            let id = engine.submit::<Rejects>(&n).await.expect("submit");
            final_state::<Rejects>(engine, &id).await;
            if n > 9 {
                failed.push((id, n));
            }
        }
        let mut letters = Vec::new();
        let mut before = None;
        loop {
            let page = engine.dead_letters::<Rejects>(2, before).await.expect("dead letters");
            assert!(page.dead.len() <= 2);
            letters.extend(page.dead);
            match page.next_cursor {
                Some(cursor) => before = Some(cursor),
                None => break,
            }
        }
        // Newest first: the reverse of the order they failed in.
        let listed: Vec<&RequestId> = letters.iter().map(|d| &d.request_id).collect();
        let expected: Vec<&RequestId> = failed.iter().rev().map(|(id, _)| id).collect();
        assert_eq!(listed, expected);
        assert!(letters.windows(2).all(|pair| pair[0].id > pair[1].id));
        for (letter, (_, n)) in letters.iter().zip(failed.iter().rev()) {
            assert_eq!(letter.failure.vertex, "small_only");
            assert_eq!(letter.failure.attempts, 2, "{letter:?}");
            assert!(letter.failure.failure.to_string().contains(&format!("{n} is too big")));
            assert_eq!(letter.at_ms, letter.id.at_ms());
        }
        let none = engine.dead_letters::<Windows>(10, None).await.expect("dead letters");
        assert_eq!((none.dead.len(), none.next_cursor), (0, None));
    }

    /// A bulk stop stops every running request the selection picks, and skips, with the
    /// control table's reason, those it does not apply to; an empty selection picks nothing.
    fn bulk_actions_apply_by_the_control_table(engine) {
        // Four, so that all run at once on the Redis case's worker (four slots).
        let mut ids = Vec::new();
        for n in 0..4u32 {
            ids.push(engine.submit::<Held>(&(100 + n)).await.expect("submit"));
        }
        for id in &ids {
            until::<Held>(engine, id, "it runs", |s| s.status == RequestStatus::Running).await;
        }
        release(&ids[0]);
        final_state::<Held>(engine, &ids[0]).await;

        let nothing = engine
            .control_all::<Held>(&Selection::new(), Control::Stop)
            .await
            .expect("bulk");
        assert_eq!((nothing.matched, nothing.applied), (0, 0));

        let paused = engine
            .control_all::<Held>(&Selection::new().id(ids[1].clone()).id(ids[2].clone()), Control::Pause)
            .await
            .expect("bulk");
        assert_eq!((paused.matched, paused.applied, paused.more), (2, 2, false), "{paused:?}");
        let counts = engine.counts::<Held>().await.expect("counts");
        assert_eq!(counts.get(RequestStatus::Paused), 2);

        // Running and paused ones stop; the completed one is not picked by status.
        let stopped = engine
            .control_all::<Held>(
                &Selection::matching(
                    RequestQuery::new()
                        .status(RequestStatus::Running)
                        .status(RequestStatus::Paused),
                ),
                Control::Stop,
            )
            .await
            .expect("bulk");
        assert_eq!((stopped.matched, stopped.applied), (3, 3), "{stopped:?}");
        assert!(stopped.skipped.is_empty());
        for id in &ids[1..] {
            assert_eq!(final_state::<Held>(engine, id).await.status, RequestStatus::Stopped);
        }

        // Named by id, the ended ones are skipped with the conflict.
        let resumed = engine
            .control_all::<Held>(&Selection::new().id(ids[0].clone()).id(ids[1].clone()), Control::Resume)
            .await
            .expect("bulk");
        assert_eq!((resumed.matched, resumed.applied), (2, 0));
        let reasons: Vec<&str> = resumed.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert!(reasons[0].contains("it is completed"), "{reasons:?}");
        assert!(reasons[1].contains("it is stopped"), "{reasons:?}");
        for id in &ids[1..] {
            release(id);
        }
    }

    /// A workflow the engine does not know is an error, not an empty list.
    fn an_unknown_workflow_is_an_error(engine) {
        let unknown = engine.list_requests("nosuchflow", &RequestQuery::new()).await;
        assert!(matches!(unknown, Err(Error::UnknownFlow { .. })), "{unknown:?}");
        let unknown = engine.count_requests("nosuchflow", None).await;
        assert!(matches!(unknown, Err(Error::UnknownFlow { .. })), "{unknown:?}");
        let unknown = engine.list_dead("nosuchflow", 10, None).await;
        assert!(matches!(unknown, Err(Error::UnknownFlow { .. })), "{unknown:?}");
    }
}

/// The number of members of the sorted set `key`.
async fn members(client: &fred::prelude::Client, key: String) -> u64 {
    support::raw(client, "ZCARD", vec![key.into()]).await
}

/// On Redis the indexes are bounded by the requests' hashes: an ended request leaves them when
/// its hash expires (the retention after its end), one under way when its hash expires
/// unfinished, whether a list or count forgets it or the workers' housekeeping does. Nothing is
/// left behind, nothing is scanned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_indexes_forget_requests_as_their_hashes_expire() {
    let mut config = support::config("listing_expiry");
    config.retention = Duration::from_millis(700);
    config.unfinished_ttl = Duration::from_millis(700);
    let engine = goflow::redis::RedisEngine::builder(config)
        .register::<Windows>()
        .connect()
        .await
        .expect("connect");
    let client = support::raw_client(&engine.config().url).await;
    let tag = support::flow_tag(&engine.config().prefix, Windows::NAME);
    let index = |status: &str| format!("{tag}:by:{status}");

    // No worker yet: the requests stay queued until their hashes expire unfinished.
    for n in 0..5u32 {
        engine.submit::<Windows>(&n).await.expect("submit");
    }
    assert_eq!(members(&client, index("queued")).await, 5);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let counts = engine.counts::<Windows>().await.expect("counts");
    assert_eq!(counts.total(), 0, "{counts:?}");
    assert_eq!(members(&client, index("queued")).await, 0);

    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(engine.worker(4).run(shutdown.clone()));
    let mut ids = Vec::new();
    for n in 0..20u32 {
        let id = engine.submit::<Windows>(&n).await.expect("submit");
        ids.push(id);
    }
    for id in &ids {
        final_state::<Windows>(&engine, id).await;
    }
    assert_eq!(members(&client, index("completed")).await, 20);
    assert_eq!(members(&client, format!("{tag}:ended")).await, 20);
    let listed = every_page::<Windows>(&engine, RequestQuery::new()).await;
    assert_eq!(listed.len(), 20);

    // The worker's housekeeping (every half lease, 0.75 s here) forgets them, with nobody
    // listing.
    support::wait_until(
        "the worker forgets the expired requests",
        PATIENCE,
        async || {
            members(&client, index("completed")).await == 0
                && members(&client, format!("{tag}:ended")).await == 0
        },
    )
    .await;
    let listed = every_page::<Windows>(&engine, RequestQuery::new()).await;
    assert!(listed.is_empty(), "{listed:?}");
    for status in RequestStatus::ALL {
        assert_eq!(
            members(&client, index(status.as_str())).await,
            0,
            "{status}"
        );
    }
    assert_eq!(members(&client, format!("{tag}:ended")).await, 0);

    shutdown.cancel();
    worker.await.expect("worker task").expect("worker");
}
