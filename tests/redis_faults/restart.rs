//! Redis restarts and loses everything: the scripts, the consumer group, every key. New flows
//! complete, waiters wake, and stops still reach the worker. And a worker that starts while
//! Redis answers nothing (paused) starts once it answers.

use std::time::{Duration, Instant};

use fred::prelude::Value;
use goflow::request::{RequestOutcome, RequestStatus};
use goflow::{Engine, RequestId};

use crate::support::{self, pending_by_consumer, raw, raw_client, wait_until, RedisServer};
use crate::{close_gate, expected, kyc, open_gate, ready_key, runs, Kyc, Running, LIMIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_flows_complete_after_redis_restarts_without_its_data() {
    let mut server = RedisServer::start();
    let config = support::config_at(&server.url(), "restart");
    let running = Running::start(config, kyc).await;
    let engine = &running.engine;
    assert_eq!(
        engine.run::<Kyc>("dave".into()).await.unwrap(),
        expected("dave")
    );

    server.restart();

    // The worker recreates its consumer group, the scripts are loaded again, and the client
    // reconnects: some submission completes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut tries = 0;
    loop {
        tries += 1;
        let attempt = tokio::time::timeout(Duration::from_secs(5), async {
            let id = engine.submit::<Kyc>(&"erin".into()).await?;
            engine.wait::<Kyc>(&id, Duration::from_secs(3)).await
        })
        .await;
        match attempt {
            Ok(Ok(RequestOutcome::Completed(output))) => {
                assert_eq!(output, expected("erin"));
                break;
            }
            other => assert!(
                Instant::now() < deadline,
                "no flow completed within 20 s of the restart ({tries} tries); last: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // And the engine is fully back: flows run end to end, waking their waiters.
    for i in 0..10 {
        let user = format!("frank-{i}");
        let output = tokio::time::timeout(LIMIT, engine.run::<Kyc>(user.clone()))
            .await
            .expect("a flow completes after the restart")
            .unwrap();
        assert_eq!(output, expected(&user));
    }

    // Stops still reach the worker: it subscribed again on its new connection.
    let client = raw_client(&server.url()).await;
    let channel = format!("{}:control", engine.config().prefix);
    wait_until("the worker listens for stops again", LIMIT, async || {
        let reply: Vec<Value> = raw(
            &client,
            "PUBSUB",
            vec!["NUMSUB".into(), channel.as_str().into()],
        )
        .await;
        reply.get(1).and_then(Value::as_u64) == Some(1)
    })
    .await;
    let id = RequestId::generate();
    close_gate(&id, "detect");
    engine
        .submit_as::<Kyc>(id.clone(), &"grace".into())
        .await
        .unwrap();
    wait_until("detect starts", LIMIT, async || runs(&id, "detect") == 1).await;
    assert_eq!(
        engine.stop::<Kyc>(&id).await.unwrap(),
        RequestStatus::Stopped
    );
    // Its gate still closed, `detect` ends only by being cancelled, which acknowledges it.
    let ready = ready_key::<Kyc>(engine.config());
    wait_until("the stopped attempt is cancelled", LIMIT, async || {
        pending_by_consumer(&client, &ready)
            .await
            .values()
            .all(|&n| n == 0)
    })
    .await;
    open_gate(&id, "detect");
    running.finish().await;
}

/// A worker whose start-up meets a Redis that answers nothing (paused, as in a failover or a
/// long `BGSAVE` fork on a busy host) past its command timeout keeps trying, and runs once
/// Redis answers: it does not give up, which would end the process it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_started_while_redis_answers_nothing_starts_once_it_does() {
    let server = RedisServer::start();
    let mut config = support::config_at(&server.url(), "paused-start");
    config.command_timeout = Duration::from_millis(300);
    let engine = goflow::redis::RedisEngine::builder(config)
        .register::<Kyc>()
        .connect()
        .await
        .expect("connect");
    server.signal("STOP");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(engine.worker(4).run(shutdown.clone()));
    // Several command timeouts pass while the worker starts.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !worker.is_finished(),
        "the worker gave up: {:?}",
        worker.await
    );
    server.signal("CONT");
    let output = tokio::time::timeout(LIMIT, engine.run::<Kyc>("grace".into()))
        .await
        .expect("a flow completes once Redis answers")
        .unwrap();
    assert_eq!(output, expected("grace"));
    shutdown.cancel();
    worker
        .await
        .expect("the worker task")
        .expect("the worker ends cleanly");
}
