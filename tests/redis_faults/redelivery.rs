//! Redelivery: a join's parent delivered twice (while it runs, and after it is done but before
//! the join's other parent is), and every vertex delivered again after the request completed.
//! A vertex may run twice; its effect is recorded once, so the join fires once.

use fred::prelude::{Client, Value};
use goflow::request::{RequestStatus, VertexStatus};
use goflow::{Engine, RequestId, Workflow};

use crate::support::{self, raw, raw_client, vertex_index, wait_until};
use crate::{
    close_gate, completed, expected, fields, kyc, open_gate, ready_key, runs, Kyc, Running, LIMIT,
};

/// Adds a ready-stream entry for `vertex` of request `id` by hand, as a redelivery would.
async fn add_entry(client: &Client, stream: &str, id: &RequestId, vertex: usize) -> String {
    raw(
        client,
        "XADD",
        vec![
            stream.into(),
            "*".into(),
            "r".into(),
            id.as_str().into(),
            "v".into(),
            vertex.to_string().into(),
            "tp".into(),
            "".into(),
        ],
    )
    .await
}

/// Waits until the stream entry `entry` has been handled (acknowledged entries are deleted).
async fn wait_handled(client: &Client, stream: &str, entry: &str) {
    wait_until(
        &format!("entry {entry} of {stream} is handled"),
        LIMIT,
        async || {
            let left: Value = raw(
                client,
                "XRANGE",
                vec![stream.into(), entry.into(), entry.into()],
            )
            .await;
            left.into_array().is_empty()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_delivered_twice_while_running_fires_its_join_once() {
    let (_server, config) = support::own_server("dup-running");
    let client = raw_client(&config.url).await;
    let ready = ready_key::<Kyc>(&config);
    let running = Running::start(config, kyc).await;
    let engine = &running.engine;

    let id = RequestId::generate();
    close_gate(&id, "detect");
    assert!(engine
        .submit_as::<Kyc>(id.clone(), &"alice".into())
        .await
        .unwrap());
    wait_until("detect starts", LIMIT, async || runs(&id, "detect") == 1).await;
    let state = engine.status::<Kyc>(&id).await.unwrap();
    let detect_at = vertex_index(&state, "detect");
    assert_eq!(state.vertices[detect_at].status, VertexStatus::Running);

    // A second delivery of the running parent: it starts too (at least once).
    add_entry(&client, &ready, &id, detect_at).await;
    wait_until("the duplicate of detect starts", LIMIT, async || {
        runs(&id, "detect") == 2
    })
    .await;
    open_gate(&id, "detect");

    assert_eq!(completed::<Kyc>(engine, &id).await, expected("alice"));
    assert_eq!(runs(&id, "verdict"), 1, "the join ran once");
    assert_eq!(runs(&id, "score"), 1);
    let state = engine.status::<Kyc>(&id).await.unwrap();
    assert_eq!(state.vertices[detect_at].attempts, 2);
    let join = vertex_index(&state, "verdict");
    assert_eq!(state.vertices[join].attempts, 1);
    let arrivals = fields(
        &client,
        running.engine.config(),
        Kyc::NAME,
        &id,
        &[format!("n:{join}")],
    )
    .await;
    assert_eq!(
        arrivals,
        vec![Some("2".to_owned())],
        "each parent arrived once"
    );
    running.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_delivered_again_before_the_other_parent_finishes_does_not_fire_the_join() {
    let (_server, config) = support::own_server("dup-early");
    let client = raw_client(&config.url).await;
    let ready = ready_key::<Kyc>(&config);
    let running = Running::start(config, kyc).await;
    let engine = &running.engine;

    // `score` is held, so `verdict` lacks one input while `detect` is redelivered.
    let id = RequestId::generate();
    close_gate(&id, "score");
    engine
        .submit_as::<Kyc>(id.clone(), &"bob".into())
        .await
        .unwrap();
    let mut detect_at = 0;
    wait_until("detect is done", LIMIT, async || {
        let state = engine.status::<Kyc>(&id).await.unwrap();
        detect_at = vertex_index(&state, "detect");
        state.vertices[detect_at].status == VertexStatus::Done
    })
    .await;
    let entry = add_entry(&client, &ready, &id, detect_at).await;
    wait_handled(&client, &ready, &entry).await;

    let state = engine.status::<Kyc>(&id).await.unwrap();
    let join = vertex_index(&state, "verdict");
    assert_eq!(
        state.vertices[join].status,
        VertexStatus::Pending,
        "{state:?}"
    );
    assert_eq!(
        state.vertices[detect_at].attempts, 1,
        "a done vertex is not started again"
    );
    assert_eq!(runs(&id, "detect"), 1);
    assert_eq!(runs(&id, "verdict"), 0);

    open_gate(&id, "score");
    assert_eq!(completed::<Kyc>(engine, &id).await, expected("bob"));
    assert_eq!(runs(&id, "verdict"), 1);
    running.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_after_completion_change_nothing() {
    let (_server, config) = support::own_server("dup-after");
    let client = raw_client(&config.url).await;
    let ready = ready_key::<Kyc>(&config);
    let running = Running::start(config, kyc).await;
    let engine = &running.engine;

    let id = engine.submit::<Kyc>(&"carol".into()).await.unwrap();
    assert_eq!(completed::<Kyc>(engine, &id).await, expected("carol"));
    let before = engine.status::<Kyc>(&id).await.unwrap();

    // Every vertex again, the join's parents and the exit vertex included.
    for vertex in 0..before.vertices.len() {
        let entry = add_entry(&client, &ready, &id, vertex).await;
        wait_handled(&client, &ready, &entry).await;
    }

    let after = engine.status::<Kyc>(&id).await.unwrap();
    assert_eq!(after.status, RequestStatus::Completed);
    assert_eq!(after.output, before.output, "the output is unchanged");
    assert_eq!(after.finished_at_ms, before.finished_at_ms);
    for (a, b) in after.vertices.iter().zip(&before.vertices) {
        assert_eq!(
            (a.status, a.attempts),
            (b.status, b.attempts),
            "{}",
            a.vertex
        );
        assert_eq!(a.attempts, 1, "{}", a.vertex);
    }
    for node in ["get_image", "detect", "score", "verdict"] {
        assert_eq!(runs(&id, node), 1, "{node}");
    }
    assert_eq!(completed::<Kyc>(engine, &id).await, expected("carol"));
    running.finish().await;
}
