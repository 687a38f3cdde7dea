//! The benchmark workloads (kyc, chain10, fanout32, kyc latency and more) on goflow's engines,
//! printing one `RESULT {json}` line per workload, the format the comparison harness reads
//! (see BENCHMARKS.md for the method and the figures).
//!
//! ```sh
//! cargo bench --bench flows -- --redis       # Redis engine: one worker process, concurrency 8
//! cargo bench --bench flows -- --embedded    # embedded engine
//! cargo bench --bench flows -- --redis --workloads kyc,kyc_lat --n-kyc 2000
//! cargo bench --bench flows -- --redis --redis-cluster   # one server, then a 3-primary cluster
//! ```
//!
//! `--redis-cluster` runs the same workloads on a Redis Cluster of the bench's own (3 primaries
//! on free ports, `redis-server --cluster-enabled yes` joined by `redis-cli --cluster create`),
//! after the single server when `--redis` is given too: first with each workflow's keys in one
//! partition (`goflow-redis-cluster3-c8`: each workflow on one primary), then in 3
//! (`goflow-redis-cluster3-p3-c8`: each workflow on every primary). Its Redis CPU and commands
//! are summed over the nodes.
//!
//! Workloads (every step returns its input plus a short suffix, as the comparison's steps do):
//! `kyc` (5,000 flows submitted at once), `chain10` (2,000), `fanout32` (500), and `kyc_lat`
//! (200 flows one at a time, p50/p99 in ms), after a warm-up of 40 kyc flows. `fanout32` is
//! `first -> each { mid } => aggregate` over 32 items: 34 vertex runs per flow, as in the
//! comparison.
//! `fanoutN` (any width, e.g. `--workloads fanout128,fanout1024`) gives the fan-out curve: it
//! runs about 16,000 branches in all and also prints `branches_per_s`.
//!
//! `--workloads memory` (Redis): queues 10,000 kyc flows (`--n-memory`) with no worker
//! running and reports Redis memory per in-flight flow, then the worker's peak RSS while it
//! drains them.
//!
//! `--workers N` runs N worker processes (scaling), `--workloads chain100` a 100-step chain
//! (cost per vertex against chain10).
//!
//! `--workloads kyc_idle` (`--n-idle`, default 100) runs kyc flows one at a time with 0.75 to
//! 2.25 s of idleness before each (1.5 s on average): the latency a request meets on a quiet
//! service. `--embedded
//! --workloads lookup` (`--n-lookup`, default 100; try 1000000) submits that many requests,
//! keeps them, and times status lookups among them, with the process's peak RSS.
//!
//! The Redis engine's driver (the client that submits and waits) runs on a current-thread
//! runtime, as the comparison's drivers run on one thread; `--driver-runtime multi` gives it
//! tokio's multi-thread runtime.
//!
//! `--trace` records every span through OpenTelemetry (a batch processor into an in-memory
//! exporter, in the driver and the worker alike), to measure what tracing costs; the system
//! name then ends in `-traced`. `--no-events` runs the Redis engine with its events off
//! (`RedisConfig::events`), to measure what recording them costs. `--run-ahead` runs it with
//! its workers running ahead, reading each request's status before they start anything
//! (`RunAhead::Checked`; `RedisConfig::run_ahead` is off by default), and the system name then
//! ends in `-ahead`; `--run-ahead-unchecked` without that read (`RunAhead::Unchecked`: a pause
//! then parks only from a worker's next record on), the name ending in `-ahead-unchecked`.
//!
//! The Redis engine runs with all its guarantees on (leases, retries, state, TTL). Its worker is
//! a separate process (this binary, re-executed with `--worker-process`); the driver submits
//! and waits through the client API. Redis: `--redis-url` or `GOFLOW_BENCH_REDIS_URL` (db 0 is
//! refused), keys under a fresh prefix per run; without either, the bench starts a
//! `redis-server` of its own on a free port and stops it at the end.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fred::prelude::{ClientLike, Config};
use goflow::prelude::*;
use goflow::redis::{RedisConfig, RedisEngine, RunAhead};
use goflow::request::RequestOutcome;
use goflow::{EmbeddedEngine, Engine};
use tokio_util::sync::CancellationToken;

#[node]
async fn get_kyc_image(x: String) -> String {
    x + "|img"
}
#[node]
async fn face_detect(x: String) -> String {
    x + "|fd"
}
#[node]
async fn face_match(x: String) -> String {
    x + "|fm"
}
#[node]
async fn mark_profile(fd: String, fm: String) -> String {
    format!("{fd}+{fm}|mp")
}
/// One step of the chain: appends its vertex name (`s1` … `s10`).
#[node]
async fn step(ctx: Context, x: String) -> String {
    format!("{x}|{}", ctx.vertex())
}
/// The first step of a fan-out: the input is `width:label`, the output `width` copies of it.
#[node]
async fn fan_first(x: String) -> Vec<String> {
    let width = x
        .split_once(':')
        .and_then(|(w, _)| w.parse().ok())
        .unwrap_or(32);
    vec![x + "|first"; width]
}
#[node]
async fn mid(x: String) -> u32 {
    u32::try_from(x.len()).unwrap_or(0)
}
/// Gathers every branch's output (in item order).
#[node]
async fn fan_agg(lengths: Vec<u32>) -> String {
    format!("agg:{}", lengths.iter().filter(|&&n| n > 0).count())
}

workflow! {
    pub Kyc = get_kyc_image -> [face_detect, face_match] => mark_profile;
    pub Chain10 = step as s1 -> step as s2 -> step as s3 -> step as s4 -> step as s5
        -> step as s6 -> step as s7 -> step as s8 -> step as s9 -> step as s10;
    pub Chain100 = step as s1 -> step as s2 -> step as s3 -> step as s4 -> step as s5 -> step as s6 -> step
        as s7 -> step as s8 -> step as s9 -> step as s10 -> step as s11 -> step as s12 -> step
        as s13 -> step as s14 -> step as s15 -> step as s16 -> step as s17 -> step as s18 ->
        step as s19 -> step as s20 -> step as s21 -> step as s22 -> step as s23 -> step as s24
        -> step as s25 -> step as s26 -> step as s27 -> step as s28 -> step as s29 -> step as
        s30 -> step as s31 -> step as s32 -> step as s33 -> step as s34 -> step as s35 -> step
        as s36 -> step as s37 -> step as s38 -> step as s39 -> step as s40 -> step as s41 ->
        step as s42 -> step as s43 -> step as s44 -> step as s45 -> step as s46 -> step as s47
        -> step as s48 -> step as s49 -> step as s50 -> step as s51 -> step as s52 -> step as
        s53 -> step as s54 -> step as s55 -> step as s56 -> step as s57 -> step as s58 -> step
        as s59 -> step as s60 -> step as s61 -> step as s62 -> step as s63 -> step as s64 ->
        step as s65 -> step as s66 -> step as s67 -> step as s68 -> step as s69 -> step as s70
        -> step as s71 -> step as s72 -> step as s73 -> step as s74 -> step as s75 -> step as
        s76 -> step as s77 -> step as s78 -> step as s79 -> step as s80 -> step as s81 -> step
        as s82 -> step as s83 -> step as s84 -> step as s85 -> step as s86 -> step as s87 ->
        step as s88 -> step as s89 -> step as s90 -> step as s91 -> step as s92 -> step as s93
        -> step as s94 -> step as s95 -> step as s96 -> step as s97 -> step as s98 -> step as
        s99 -> step as s100;
    /// `first -> N parallel -> aggregate`, N from the input (`fanout32`: 32).
    pub Fanout = fan_first -> each { mid } => fan_agg;
}

/// The width of a `fanoutN` workload.
fn fan_width(workload: &str) -> usize {
    workload
        .strip_prefix("fanout")
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("`{workload}`: a fan-out workload is `fanout<width>`"))
}

fn kyc_expected(x: &str) -> String {
    format!("{x}|img|fd+{x}|img|fm|mp")
}

fn chain_expected(x: &str, steps: usize) -> String {
    (1..=steps).fold(x.to_owned(), |acc, k| format!("{acc}|s{k}"))
}

struct Args {
    redis: bool,
    /// Also (or only) on a Redis Cluster of the bench's own: 3 primaries (see [`OwnCluster`]).
    redis_cluster: bool,
    embedded: bool,
    workloads: Vec<String>,
    n: HashMap<&'static str, usize>,
    concurrency: usize,
    /// The Redis to run on; `None`: a `redis-server` of the bench's own (see [`OwnRedis`]).
    redis_url: Option<String>,
    trace: bool,
    /// Worker processes (each with `concurrency` slots).
    workers: usize,
    /// The Redis driver's tokio runtime: `current` (one thread, the default) or `multi`.
    driver_runtime: String,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        argv.iter()
            .position(|a| a == name)
            .and_then(|i| argv.get(i + 1).cloned())
    };
    let flag = |name: &str| argv.iter().any(|a| a == name);
    let mut n = HashMap::from([
        ("kyc", 5000),
        ("chain10", 2000),
        ("chain100", 200),
        ("fanout32", 500),
        ("kyc_lat", 200),
        ("memory", 10_000),
    ]);
    for (key, arg) in [
        ("kyc", "--n-kyc"),
        ("chain10", "--n-chain10"),
        ("chain100", "--n-chain100"),
        ("memory", "--n-memory"),
        ("fanout32", "--n-fanout32"),
        ("kyc_lat", "--n-lat"),
        ("kyc_idle", "--n-idle"),
        ("lookup", "--n-lookup"),
    ] {
        if let Some(v) = value(arg).and_then(|v| v.parse().ok()) {
            n.insert(key, v);
        }
    }
    let (redis, embedded) = match (flag("--redis"), flag("--embedded")) {
        (false, false) if !flag("--redis-cluster") => (true, true),
        both => both,
    };
    let redis_url = value("--redis-url").or_else(|| std::env::var("GOFLOW_BENCH_REDIS_URL").ok());
    Args {
        redis,
        redis_cluster: flag("--redis-cluster"),
        embedded,
        workloads: value("--workloads")
            .unwrap_or_else(|| "kyc,chain10,fanout32,kyc_lat".to_owned())
            .split(',')
            .map(str::to_owned)
            .collect(),
        n,
        concurrency: value("--concurrency")
            .and_then(|v| v.parse().ok())
            .unwrap_or(8),
        redis_url,
        trace: flag("--trace"),
        workers: value("--workers")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
            .max(1),
        driver_runtime: value("--driver-runtime").unwrap_or_else(|| "current".to_owned()),
    }
}

fn redis_config(url: &str, prefix: &str, partitions: u16) -> RedisConfig {
    let mut config = RedisConfig::new(url);
    config.prefix = prefix.to_owned();
    config.partitions = partitions;
    config.retention = Duration::from_secs(120);
    config.events = !no_events();
    config.run_ahead = run_ahead();
    config
}

/// `--run-ahead` or `--run-ahead-unchecked`: the Redis engine's workers run ahead
/// (`RedisConfig::run_ahead`).
fn run_ahead() -> RunAhead {
    if std::env::args().any(|a| a == "--run-ahead-unchecked") {
        RunAhead::Unchecked
    } else if std::env::args().any(|a| a == "--run-ahead") {
        RunAhead::Checked
    } else {
        RunAhead::Off
    }
}

/// The flag that gives `mode` to a worker process, and the system name's suffix for it.
fn run_ahead_flag(mode: RunAhead) -> Option<(&'static str, &'static str)> {
    match mode {
        RunAhead::Checked => Some(("--run-ahead", "-ahead")),
        RunAhead::Unchecked => Some(("--run-ahead-unchecked", "-ahead-unchecked")),
        _ => None,
    }
}

/// `--no-events`: the Redis engine with its events off (`RedisConfig::events`), in the driver
/// and in the worker processes alike.
fn no_events() -> bool {
    std::env::args().any(|a| a == "--no-events")
}

async fn connect(url: &str, prefix: &str, partitions: u16) -> RedisEngine {
    RedisEngine::builder(redis_config(url, prefix, partitions))
        .register::<Kyc>()
        .register::<Chain10>()
        .register::<Fanout>()
        .register::<Chain100>()
        .connect()
        .await
        .expect("connect to the benchmark's Redis")
}

/// With `--trace`: every span recorded through OpenTelemetry, exported in batches to memory.
fn install_tracing() -> opentelemetry_sdk::trace::SdkTracerProvider {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
    provider
}

/// Redis `used_memory` in bytes.
async fn redis_memory(client: &fred::prelude::Client) -> f64 {
    let info: String = client
        .custom(fred::cmd!("INFO"), vec!["memory"])
        .await
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// A process's peak resident set, in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

impl Args {
    /// The Redis the bench runs on: the one given, or the bench's own.
    fn url(&self) -> &str {
        self.redis_url
            .as_deref()
            .expect("a Redis URL, or a server of the bench's own")
    }
}

/// The `lookup` workload (embedded): `n` requests submitted and kept (finished, within the
/// retention), then the state of 10,000 of them, picked at random, read one after the other:
/// how many are kept, the mean and p99 time of one status lookup (µs), and the process's RSS.
async fn lookup(engine: &EmbeddedEngine, n: usize) -> (usize, f64, f64, f64) {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(
            engine
                .submit::<Kyc>(&format!("kept-{i}"))
                .await
                .expect("submit"),
        );
    }
    // Lookups read requests whatever their status; waiting for the last ones lets most end.
    for id in ids.iter().rev().take(64) {
        engine
            .wait::<Kyc>(id, Duration::from_secs(600))
            .await
            .expect("wait");
    }
    let mut samples = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let id = &ids[fastrand::usize(..ids.len())];
        let started = Instant::now();
        let state = engine.status::<Kyc>(id).await.expect("a kept request");
        samples.push(started.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(state);
    }
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let p99 = samples[samples.len() * 99 / 100];
    (ids.len(), mean, p99, peak_rss_mib(std::process::id()))
}

/// The `memory` workload: Redis bytes per queued flow, then the worker's peak RSS draining them.
async fn memory(args: &Args, n: usize) {
    let prefix = format!("bench-mem-{}-{:08x}", std::process::id(), fastrand::u32(..));
    let engine = connect(args.url(), &prefix, 1).await;
    let client = fred::prelude::Builder::from_config(Config::from_url(args.url()).expect("url"))
        .build()
        .expect("stats client");
    client.init().await.expect("connect stats client");
    let before = redis_memory(&client).await;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(
            engine
                .submit::<Kyc>(&format!("mem-{i}"))
                .await
                .expect("submit"),
        );
    }
    let queued = redis_memory(&client).await;
    let worker = spawn_worker(args, args.url(), &prefix, 1);
    for id in &ids {
        match engine
            .wait::<Kyc>(id, Duration::from_secs(600))
            .await
            .expect("wait")
        {
            RequestOutcome::Completed(_) => {}
            other => panic!("flow did not complete: {other:?}"),
        }
    }
    let rss = peak_rss_mib(worker.id());
    let mut worker = worker;
    drop(worker.stdin.take());
    let _ = worker.wait();
    let _ = client.quit().await;
    println!(
        "RESULT {{\"system\":\"goflow-redis-c{}\",\"workload\":\"memory\",\"flows\":{n},\"redis_bytes_per_flow\":{:.0},\"worker_peak_rss_mib\":{rss:.1}}}",
        args.concurrency,
        (queued - before) / n as f64
    );
}

/// Starts one worker process and waits for its `READY`.
fn spawn_worker(args: &Args, url: &str, prefix: &str, partitions: u16) -> Child {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args(["--worker-process", "--redis-url", url, "--prefix", prefix])
        .args(["--partitions", &partitions.to_string()])
        .args(["--concurrency", &args.concurrency.to_string()])
        .args(args.trace.then_some("--trace"))
        .args(no_events().then_some("--no-events"))
        .args(run_ahead_flag(run_ahead()).map(|(flag, _)| flag))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the worker process");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().expect("worker stdout")),
        &mut line,
    )
    .expect("worker READY line");
    assert_eq!(line.trim(), "READY", "worker did not start");
    child
}

/// The worker process: runs until its stdin closes (the driver ends it).
fn worker_process(url: &str, prefix: &str, partitions: u16, concurrency: usize) {
    let _tracing = std::env::args()
        .any(|a| a == "--trace")
        .then(install_tracing);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let engine = connect(url, prefix, partitions).await;
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(engine.worker(concurrency).run(shutdown.clone()));
        println!("READY");
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            let _ = std::io::stdin().read_line(&mut sink);
        })
        .await;
        shutdown.cancel();
        let _ = worker.await;
    });
}

fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = stat[stat.rfind(')').map_or(0, |i| i + 2)..]
        .split(' ')
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn own_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id())
}

/// Redis CPU seconds and commands processed (including those inside scripts).
async fn redis_stats(servers: &[fred::prelude::Client]) -> (f64, f64) {
    let mut total = (0.0, 0.0);
    for client in servers {
        let info: String = client
            .custom(fred::cmd!("INFO"), vec!["all"])
            .await
            .unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        total.0 += field("used_cpu_user") + field("used_cpu_sys");
        total.1 += field("total_commands_processed");
    }
    total
}

#[derive(Clone)]
enum Driver {
    Redis(RedisEngine),
    Embedded(EmbeddedEngine),
}

impl Driver {
    async fn kyc(&self, x: String) -> String {
        self.run::<Kyc>(x).await
    }

    async fn run<W: Workflow<Input = String, Output = String>>(&self, x: String) -> String {
        // Each engine's future is boxed: a flow's task then holds only the one it runs (the
        // Redis client's future is several kB; unboxed, every embedded flow's task would carry
        // room for it too).
        match self {
            Driver::Embedded(engine) => Box::pin(engine.run::<W>(x)).await.expect("flow succeeds"),
            // Submits and waits for the outcome, as a client does.
            Driver::Redis(engine) => Box::pin(engine.run::<W>(x)).await.expect("flow succeeds"),
        }
    }
}

async fn throughput(driver: &Driver, workload: &str, n: usize) -> (f64, f64) {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let driver = driver.clone();
        let workload = workload.to_owned();
        tasks.spawn(async move {
            match workload.as_str() {
                "kyc" => {
                    let x = format!("user-{i}");
                    assert_eq!(driver.kyc(x.clone()).await, kyc_expected(&x));
                }
                "chain10" => {
                    let x = format!("c-{i}");
                    assert_eq!(
                        driver.run::<Chain10>(x.clone()).await,
                        chain_expected(&x, 10)
                    );
                }
                "chain100" => {
                    let x = format!("c-{i}");
                    assert_eq!(
                        driver.run::<Chain100>(x.clone()).await,
                        chain_expected(&x, 100)
                    );
                }
                _ => {
                    let width = fan_width(&workload);
                    let out = driver.run::<Fanout>(format!("{width}:f-{i}")).await;
                    assert_eq!(out, format!("agg:{width}"));
                }
            }
        });
    }
    let submitted = started.elapsed().as_secs_f64();
    while let Some(done) = tasks.join_next().await {
        done.expect("flow task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    (elapsed, submitted)
}

/// The mean pause before each request of the `kyc_idle` workload.
const IDLE_GAP: Duration = Duration::from_millis(1500);

/// `n` kyc flows one at a time, `gap` apart on average: p50, p99 and mean latency in ms. The
/// pauses vary, from half the gap to one and a half times it (seeded, so runs compare), so
/// that requests arrive at every phase of whatever an idle engine does in cycles (a blocking
/// read timing out every second, say).
async fn latency(driver: &Driver, n: usize, gap: Duration) -> (f64, f64, f64) {
    let mut samples = Vec::with_capacity(n);
    let mut rng = fastrand::Rng::with_seed(7);
    for i in 0..n {
        tokio::time::sleep(gap.mul_f64(0.5 + rng.f64())).await;
        let x = format!("lat-{i}");
        let started = Instant::now();
        assert_eq!(driver.kyc(x.clone()).await, kyc_expected(&x));
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        samples[((p / 100.0 * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1]
    };
    (
        pct(50.0),
        pct(99.0),
        samples.iter().sum::<f64>() / samples.len() as f64,
    )
}

/// Where the bench runs: the embedded engine, or the Redis engine on a server or a cluster.
enum Target<'a> {
    Embedded,
    Redis {
        /// The engine's URL.
        url: &'a str,
        /// Each server whose CPU and commands are counted (every node of a cluster), by URL.
        servers: &'a [String],
        /// What the system's name says of it: `redis`, `redis-cluster3`, or
        /// `redis-cluster3-p3` (each workflow in 3 partitions).
        label: &'a str,
        /// How many partitions each workflow's keys are split into.
        partitions: u16,
    },
}

async fn bench(args: &Args, target: Target<'_>) {
    let prefix = format!("bench-{}-{:08x}", std::process::id(), fastrand::u32(..));
    let redis = matches!(target, Target::Redis { .. });
    let (driver, mut workers, stats, label): (Driver, Vec<Child>, Vec<fred::prelude::Client>, _) =
        match target {
            Target::Redis {
                url,
                servers,
                label,
                partitions,
            } => {
                assert!(
                    !url.trim_end_matches('/').ends_with("/0"),
                    "refusing to use Redis db 0"
                );
                let engine = connect(url, &prefix, partitions).await;
                let workers: Vec<Child> = (0..args.workers)
                    .map(|_| spawn_worker(args, url, &prefix, partitions))
                    .collect();
                let mut stats = Vec::new();
                for server in servers {
                    let client =
                        fred::prelude::Builder::from_config(Config::from_url(server).expect("url"))
                            .build()
                            .expect("stats client");
                    client.init().await.expect("connect stats client");
                    stats.push(client);
                }
                (Driver::Redis(engine), workers, stats, label)
            }
            Target::Embedded => (
                Driver::Embedded(EmbeddedEngine::new()),
                Vec::new(),
                Vec::new(),
                "embedded",
            ),
        };
    let mut system = if redis && args.workers > 1 {
        format!("goflow-{label}-{}x-c{}", args.workers, args.concurrency)
    } else if redis {
        format!("goflow-{label}-c{}", args.concurrency)
    } else {
        "goflow-embedded".to_owned()
    };
    if args.trace {
        system.push_str("-traced");
    }
    if let (true, Some((_, suffix))) = (redis, run_ahead_flag(run_ahead())) {
        system.push_str(suffix);
    }

    // Warm-up.
    let warm: Vec<_> = (0..40)
        .map(|i| {
            let driver = driver.clone();
            tokio::spawn(async move { driver.kyc(format!("warm-{i}")).await })
        })
        .collect();
    for w in warm {
        w.await.expect("warm-up");
    }

    for workload in args.workloads.iter().filter(|w| *w != "memory") {
        // Wider fan-outs than 32 run fewer flows: about 16,000 branches in all.
        let n = match args.n.get(workload.as_str()) {
            Some(&n) => n,
            None if workload.starts_with("fanout") => (16_000 / fan_width(workload)).max(8),
            None => 100,
        };
        let workers_cpu =
            |workers: &[Child]| workers.iter().map(|c| cpu_seconds(c.id())).sum::<f64>();
        let worker_cpu0 = workers_cpu(&workers);
        let driver_cpu0 = own_cpu_seconds();
        let redis0 = redis_stats(&stats).await;
        let mut result = match workload.as_str() {
            "kyc_lat" => {
                let (p50, p99, mean) = latency(&driver, n, Duration::ZERO).await;
                format!("\"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3},\"mean_ms\":{mean:.3}")
            }
            "kyc_idle" => {
                // One request after each idle gap: what a request meets on a quiet service
                // (an idle worker blocked in its read), not back to back.
                let (p50, p99, mean) = latency(&driver, n, IDLE_GAP).await;
                format!(
                    "\"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3},\"mean_ms\":{mean:.3},\"gap_ms\":{}",
                    IDLE_GAP.as_millis()
                )
            }
            "lookup" => {
                assert!(!redis, "`lookup` runs on the embedded engine (--embedded)");
                // An engine that keeps all of them (it keeps 100,000 by default).
                let engine = EmbeddedEngine::builder().retain_at_most(n).build();
                let (retained, mean_us, p99_us, rss) = lookup(&engine, n).await;
                format!(
                    "\"retained\":{retained},\"lookup_mean_us\":{mean_us:.2},\"lookup_p99_us\":{p99_us:.2},\"rss_mib\":{rss:.0}"
                )
            }
            "kyc" | "chain10" | "chain100" => {
                let (elapsed, submit) = throughput(&driver, workload, n).await;
                format!(
                    "\"elapsed_s\":{elapsed:.3},\"submit_s\":{submit:.3},\"flows_per_s\":{:.1}",
                    n as f64 / elapsed
                )
            }
            fan if fan.starts_with("fanout") => {
                // Branches per second too, for the cost-per-branch curve.
                let width = fan_width(fan);
                let (elapsed, submit) = throughput(&driver, workload, n).await;
                format!(
                    "\"elapsed_s\":{elapsed:.3},\"submit_s\":{submit:.3},\"flows_per_s\":{:.1},\"width\":{width},\"branches_per_s\":{:.0}",
                    n as f64 / elapsed,
                    (n * width) as f64 / elapsed
                )
            }
            other => panic!("unknown workload `{other}`"),
        };
        let driver_cpu = own_cpu_seconds() - driver_cpu0;
        let worker_cpu = if workers.is_empty() {
            driver_cpu
        } else {
            workers_cpu(&workers) - worker_cpu0
        };
        result += &format!(
            ",\"worker_cpu_s\":{worker_cpu:.2},\"driver_cpu_s\":{:.2}",
            if redis { driver_cpu } else { 0.0 }
        );
        // The embedded engine touches no Redis: say so, so the comparison's table can sum CPU.
        if stats.is_empty() {
            result += ",\"redis_cpu_s\":0.0,\"redis_cmds\":0";
        } else {
            let redis1 = redis_stats(&stats).await;
            result += &format!(
                ",\"redis_cpu_s\":{:.3},\"redis_cmds\":{}",
                redis1.0 - redis0.0,
                redis1.1 - redis0.1
            );
        }
        println!(
            "RESULT {{\"system\":\"{system}\",\"workload\":\"{workload}\",\"flows\":{n},{result}}}"
        );
    }
    for mut child in workers.drain(..) {
        drop(child.stdin.take());
        let _ = child.wait();
    }
    for client in stats {
        let _ = client.quit().await;
    }
}

/// A `redis-server` of the bench's own: a free port, a temporary directory, no persistence;
/// killed when dropped.
struct OwnRedis {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl OwnRedis {
    fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server as [`start`](Self::start) makes one, with `extra` arguments.
    fn start_with(extra: &[&str]) -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("goflow-bench-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("could not start redis-server ({e}): install it, or pass --redis-url")
            });
        let own = Self { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        own
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/6", self.port)
    }
}

/// A Redis Cluster of the bench's own: 3 primaries, each an [`OwnRedis`] with
/// `--cluster-enabled yes`, joined by `redis-cli --cluster create`; killed when dropped.
struct OwnCluster {
    nodes: Vec<OwnRedis>,
}

impl OwnCluster {
    fn start() -> Self {
        let nodes: Vec<OwnRedis> = (0..3)
            .map(|_| {
                let bus = free_port().to_string();
                OwnRedis::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    &bus,
                ])
            })
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("could not run redis-cli ({e}): install redis-tools"));
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = Self { nodes };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster.nodes.iter().all(|n| {
            Command::new("redis-cli")
                .args(["-p", &n.port.to_string(), "CLUSTER", "INFO"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
        }) {
            assert!(
                Instant::now() < deadline,
                "the cluster was not up within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// The engine's URL: every node, in fred's `redis-cluster://` form.
    fn url(&self) -> String {
        let nodes: Vec<String> = self.nodes[1..]
            .iter()
            .map(|n| format!("node=127.0.0.1:{}", n.port))
            .collect();
        format!(
            "redis-cluster://127.0.0.1:{}?{}",
            self.nodes[0].port,
            nodes.join("&")
        )
    }

    /// Each node's own URL, to count its CPU and commands.
    fn servers(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.iter().any(|a| a == "--worker-process") {
        let value = |name: &str| {
            argv.iter()
                .position(|a| a == name)
                .and_then(|i| argv.get(i + 1).cloned())
        };
        worker_process(
            &value("--redis-url").expect("--redis-url"),
            &value("--prefix").expect("--prefix"),
            value("--partitions")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
            value("--concurrency")
                .and_then(|v| v.parse().ok())
                .unwrap_or(8),
        );
        return;
    }
    let mut args = args();
    // Without a Redis URL the bench starts a redis-server of its own, on a free port, and
    // stops it at the end: it never writes to a server it was not pointed at.
    let _own_redis = (args.redis && args.redis_url.is_none()).then(|| {
        let own = OwnRedis::start();
        args.redis_url = Some(own.url());
        own
    });
    let args = Arc::new(args);
    let _tracing = args.trace.then(install_tracing);
    if args.embedded {
        // The embedded engine runs in this process: all its threads. The driver runs on one of
        // them too, as a task: waiting on the runtime's main thread instead, it would be woken
        // there (a third thread, a futex call) by every flow that ends.
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let driver = Arc::clone(&args);
        let driving = runtime.spawn(async move { bench(&driver, Target::Embedded).await });
        runtime
            .block_on(driving)
            .expect("the embedded bench did not panic");
    }
    if args.redis || args.redis_cluster {
        // The Redis engine's driver only submits and waits, on one thread, as the comparison's
        // drivers do (BullMQ's is a Node process); `--driver-runtime multi` gives it tokio's
        // multi-thread runtime instead, whose hand-offs between threads cost it more CPU.
        let runtime = match args.driver_runtime.as_str() {
            "multi" => tokio::runtime::Runtime::new(),
            "current" => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            other => panic!("--driver-runtime is `current` or `multi`, not `{other}`"),
        }
        .expect("tokio runtime");
        runtime.block_on(async {
            if args.workloads.iter().any(|w| w == "memory") && args.redis {
                memory(&args, args.n["memory"]).await;
            }
            if args.workloads.iter().any(|w| w != "memory") && args.redis {
                let url = args.url();
                let servers = [url.to_owned()];
                let target = Target::Redis {
                    url,
                    servers: &servers,
                    label: "redis",
                    partitions: 1,
                };
                bench(&args, target).await;
            }
            if args.redis_cluster {
                // Started here, beside the single server, so both run in one run.
                let cluster = OwnCluster::start();
                let (url, servers) = (cluster.url(), cluster.servers());
                // Each workflow on one primary (one partition), then over all three.
                for (label, partitions) in [("redis-cluster3", 1), ("redis-cluster3-p3", 3)] {
                    let target = Target::Redis {
                        url: &url,
                        servers: &servers,
                        label,
                        partitions,
                    };
                    bench(&args, target).await;
                }
            }
        });
    }
}
