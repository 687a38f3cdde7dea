//! The dashboard in a real browser: Debian's headless Chromium, driven over WebDriver by its
//! `chromedriver`, against the `kyc` service as a real process, on the embedded engine and on
//! Redis with two workers. Each page is checked for what an operator needs (the flows, a new
//! request appearing live, a slow request's graph going from running to done, a failure
//! shown and retried, pause, resume and stop) and for the browser's own errors: any console
//! error or failed load on any page fails the test.
//!
//! Screenshots of the three pages, at 1280×800, are written to `GOFLOW_SCREENSHOTS_DIR` when it
//! is set (the README's come from `GOFLOW_SCREENSHOTS_DIR=docs/screenshots cargo test -p
//! goflow-kyc-app --test dashboard`), else to the test's temporary directory.
//!
//! A third test deploys a changed workflow (the `rollout` binary's two builds): the flow page
//! marks the old version's request as waiting and lists the versions, and the request's page
//! draws the request's own version's graph and migrates it to the new version, where it
//! completes.
//!
//! Chromium and chromedriver are not optional here: without them the tests fail, saying how to
//! install them (`.ci/run` does).

#![cfg(unix)]

#[path = "../../../tests/support/mod.rs"]
mod support;

// It names `HeaderMap`, `StatusCode` and `Value` from here; this test uses part of it.
#[allow(dead_code)]
#[path = "../../../tests/service_router/reply.rs"]
mod reply;

mod processes;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
#[allow(unused_imports)]
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

use processes::{free_port, id_in, location, unique, Cluster, Service};

const CHROMIUM: &str = "/usr/bin/chromium";
const ROLLOUT: &str = env!("CARGO_BIN_EXE_rollout");
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a test waits for the page to show something before it fails (a hang, not a
/// timing expectation; the one timed expectation, a new request listed within 2 s, says so).
const PATIENCE: Duration = Duration::from_secs(20);

/// The tracing UI the Redis test's service links trace ids to (never opened).
const TRACES: &str = "http://127.0.0.1:9/trace/";
/// The ids of the rows of the request list, in order.
const ROW_IDS: &str =
    "return [...document.querySelectorAll('tr[data-request]')].map((tr) => tr.dataset.request)";
/// The trace link, when it is shown.
const TRACE_LINK: &str = "a[data-trace-link]:not([hidden])";

// ---------------------------------------------------------------------------------------------
// The browser.

/// A chromedriver of the test's own, on a free port; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start(dir: &Path) -> Self {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "the dashboard's browser tests need {path} (Debian's `{package}` package): \
                 apt-get install -y chromium chromium-driver (.ci/run installs them)"
            );
        }
        let port = free_port();
        let log = std::fs::File::create(dir.join("chromedriver.log")).expect("a log file");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log)
            .spawn()
            .expect("start chromedriver");
        let driver = Self { child, port };
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One headless Chromium session, used from a synchronous test: each call runs on the
/// browser's own runtime (the service is driven with a blocking client between them).
struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver_port: u16,
    session: String,
    base: String,
    screenshots: PathBuf,
}

impl Browser {
    fn open(driver: &Driver, service: &Service, profile: &Path, screenshots: PathBuf) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the browser");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                // As root, on a machine without a display or a network beyond loopback.
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
            // What the page logs, for `console_errors`.
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{}", driver.port);
        let client = runtime
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(capabilities)
                    .connect(&url),
            )
            .unwrap_or_else(|e| panic!("start a Chromium session: {e}"));
        let session = runtime
            .block_on(client.session_id())
            .ok()
            .flatten()
            .expect("a session id");
        std::fs::create_dir_all(&screenshots).expect("a directory for the screenshots");
        Self {
            runtime,
            client: Some(client),
            driver_port: driver.port,
            session,
            base: format!("http://127.0.0.1:{}", service.port),
            screenshots,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    /// Opens the dashboard at `hash` (`#/flow/kyc`).
    fn goto(&self, hash: &str) {
        let url = format!("{}/ui{hash}", self.base);
        self.runtime
            .block_on(self.client().goto(&url))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Runs `script` in the page and returns what it returns.
    fn eval(&self, script: &str) -> Value {
        self.runtime
            .block_on(self.client().execute(script, vec![]))
            .unwrap_or_else(|e| panic!("run {script:?}: {e}"))
    }

    /// The elements `css` matches now.
    fn count(&self, css: &str) -> usize {
        self.runtime
            .block_on(self.client().find_all(Locator::Css(css)))
            .map(|found| found.len())
            .unwrap_or(0)
    }

    /// Waits until `css` matches an element, failing after `limit` with `what`.
    #[track_caller]
    fn wait_for_within(&self, css: &str, what: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.count(css) > 0 {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "{what}: `{css}` not on the page within {limit:?}; the page shows:\n{}",
                self.text("body")
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    #[track_caller]
    fn wait_for(&self, css: &str, what: &str) -> Duration {
        self.wait_for_within(css, what, PATIENCE)
    }

    /// Waits until `css` matches nothing.
    #[track_caller]
    fn wait_gone(&self, css: &str, what: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.count(css) > 0 {
            assert!(
                Instant::now() < deadline,
                "{what}: `{css}` still on the page"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The text of the first element `css` matches.
    fn text(&self, css: &str) -> String {
        let client = self.client();
        self.runtime
            .block_on(async { client.find(Locator::Css(css)).await.ok()?.text().await.ok() })
            .unwrap_or_default()
    }

    /// Clicks the first element `css` matches, once it is there. A page that redraws the
    /// element between the find and the click (its actions change with the status) leaves a
    /// stale reference: the click then finds it anew.
    #[track_caller]
    fn click(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            self.wait_for(css, "a button to click");
            let client = self.client();
            match self
                .runtime
                .block_on(async { client.find(Locator::Css(css)).await?.click().await })
            {
                Ok(()) => return,
                Err(e) if e.to_string().contains("stale element") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(e) => panic!("click `{css}`: {e}"),
            }
        }
    }

    /// Saves a screenshot of the page as `<name>.png`.
    fn screenshot(&self, name: &str) {
        let png = self
            .runtime
            .block_on(self.client().screenshot())
            .expect("a screenshot");
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        println!("screenshot: {}", path.display());
    }

    /// The browser's errors since the last call: console errors, uncaught exceptions, failed
    /// loads and refused content (`SEVERE` entries of chromedriver's browser log).
    fn console_errors(&self) -> Vec<String> {
        let url = format!(
            "http://127.0.0.1:{}/session/{}/se/log",
            self.driver_port, self.session
        );
        let log = processes::client()
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json!({"type": "browser"}).to_string())
            .send()
            .and_then(|r| r.bytes())
            .expect("read the browser's log");
        let log: Value = serde_json::from_slice(&log).expect("the log is JSON");
        log["value"]
            .as_array()
            .expect("log entries")
            .iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Fails the test if the page has logged an error since the last check.
    #[track_caller]
    fn assert_no_errors(&self, page: &str) {
        let errors = self.console_errors();
        assert!(errors.is_empty(), "{page}: the browser logged {errors:#?}");
    }

    /// Whether the page is wider than the window (a layout that overflows a phone).
    fn overflows(&self) -> bool {
        self.eval("return document.documentElement.scrollWidth > window.innerWidth + 1")
            .as_bool()
            .unwrap_or(true)
    }

    fn resize(&self, width: u32, height: u32) {
        self.runtime
            .block_on(self.client().set_window_size(width, height))
            .expect("resize the window");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
    }
}

/// Where a test's screenshots go: `GOFLOW_SCREENSHOTS_DIR` (relative to the workspace) when
/// set, else a directory of the test's own.
fn screenshots_dir(test_dir: &Path) -> PathBuf {
    match std::env::var_os("GOFLOW_SCREENSHOTS_DIR") {
        Some(dir) => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(dir),
        None => test_dir.join("screenshots"),
    }
}

// ---------------------------------------------------------------------------------------------
// What both engines are checked for.

/// The four KYC flows (and the others) on the overview, with their counts.
fn overview(browser: &Browser, shoot: bool) {
    browser.goto("#/");
    for flow in ["kyc", "kyc_linear", "onboarding", "greet", "slow_greet"] {
        browser.wait_for(
            &format!("[data-flow-card=\"{flow}\"]"),
            "the overview lists every flow",
        );
    }
    browser.wait_for(
        "[data-flow-card=\"kyc\"] [data-count=\"completed\"]",
        "each flow's counts",
    );
    browser.wait_for("[data-workers]", "the workers");
    if shoot {
        browser.screenshot("overview");
    }
    browser.assert_no_errors("overview");
}

/// A request submitted while the flow page is open appears on it, without a reload, within
/// 2 s; its row follows its status.
fn live_list(browser: &Browser, kyc: &Service) {
    browser.goto("#/flow/kyc");
    browser.wait_for(
        "svg[data-graph] g[data-vertex=\"face_detect\"]",
        "the graph",
    );
    browser.wait_for("[data-tab=\"all\"]", "the status tabs");
    let version = kyc.get("/flow/kyc").expect(StatusCode::OK)["version"]
        .as_str()
        .unwrap()
        .to_owned();
    browser.wait_for(
        &format!("[data-versions] tr[data-version-row=\"{version}\"][data-state=\"current\"]"),
        "the flow's versions, this service's current",
    );
    // Let the page open its event stream before the request is submitted.
    std::thread::sleep(Duration::from_millis(500));
    let id = unique("live");
    let reply = kyc.request(
        reqwest::Method::POST,
        "/flow/kyc",
        &[("x-request-id", &id)],
        Some(&json!({"user_id": "alice"})),
    );
    location(&reply);
    let row = format!("tr[data-request=\"{id}\"]");
    let took = browser.wait_for_within(
        &row,
        "a new request appears on the flow page within 2 s",
        Duration::from_secs(2),
    );
    println!("listed {took:?} after its submission");
    browser.wait_for(
        &format!("{row}[data-status=\"completed\"]"),
        "its row shows it completed",
    );
    // However fast requests come, the first page keeps a page's worth of rows, and the next
    // page goes on after the rows shown.
    let burst: Vec<String> = (0..60).map(|i| format!("{id}-{i}")).collect();
    for request in &burst {
        let reply = kyc.request(
            reqwest::Method::POST,
            "/flow/kyc",
            &[("x-request-id", request)],
            Some(&json!({"user_id": "alice"})),
        );
        location(&reply);
    }
    browser.wait_for(
        &format!("tr[data-request=\"{}\"]", burst[59]),
        "the last of a burst is listed",
    );
    let shown = browser.count("tr[data-request]");
    assert!(shown <= 50, "the first page holds {shown} rows");
    let first_page = browser.eval(ROW_IDS);
    browser.click("button#next-page");
    browser.wait_for(
        &format!("tr[data-request=\"{}\"]", burst[0]),
        "the next page starts after the rows shown",
    );
    let second_page = browser.eval(ROW_IDS);
    let first: Vec<&str> = first_page
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        second_page
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .all(|id| !first.contains(&id)),
        "page 2 repeats page 1: {first_page} / {second_page}"
    );
    browser.assert_no_errors("flow page");
    // Readable on a phone: nothing wider than the screen but the graph's own scroller.
    browser.resize(390, 844);
    browser.goto("#/flow/kyc");
    browser.wait_for(&row, "the list on a phone");
    assert!(
        !browser.overflows(),
        "the flow page overflows a phone's width"
    );
    browser.resize(1280, 800);
    browser.assert_no_errors("flow page on a phone");
}

/// The request page of `id` of `kyc`.
fn request_page(browser: &Browser, id: &str) {
    browser.goto(&format!("#/flow/kyc/requests/{id}"));
    browser.wait_for("[data-request-status]", "the request page");
}

/// A slow request's graph shows `face_detect` running, then done; its timeline has a row for
/// each vertex; its trace id links to the tracing UI when the service has one.
fn slow_request_graph(browser: &Browser, kyc: &Service, shoot: bool, traced: bool) {
    let reply = kyc.post("/flow/kyc", &json!({"user_id": "slowpoke"}));
    let id = id_in(&location(&reply)).to_owned();
    request_page(browser, &id);
    browser.wait_for(
        "g[data-vertex=\"face_detect\"][data-status=\"running\"]",
        "face_detect shows running",
    );
    browser.wait_for(
        "g[data-vertex=\"face_detect\"][data-status=\"done\"]",
        "then done",
    );
    browser.wait_for(
        "[data-request-status][data-status=\"completed\"]",
        "the request completed",
    );
    for vertex in ["get_kyc_image", "face_detect", "face_match", "mark_profile"] {
        browser.wait_for(
            &format!("[data-gantt-row=\"{vertex}\"]"),
            "a timeline row per vertex",
        );
    }
    browser.wait_for("[data-output=\"face_detect\"]", "each vertex's output");
    // The version it is pinned to, and nothing it waits for.
    let state = kyc
        .get(&format!("/flow/kyc/requests/{id}"))
        .expect(StatusCode::OK);
    assert_eq!(
        browser.text("[data-version]"),
        state["version"].as_str().unwrap()
    );
    assert_eq!(browser.count("[data-waiting-for]:not([hidden])"), 0);
    // With `GOFLOW_TRACE_URL` set (the Redis test sets it; that engine always has a trace id),
    // the trace id links to the tracing UI.
    if traced {
        let state = kyc
            .get(&format!("/flow/kyc/requests/{id}"))
            .expect(StatusCode::OK);
        let trace_id = state["trace_id"]
            .as_str()
            .expect("a request on Redis has a trace id");
        browser.wait_for(TRACE_LINK, "the trace id links to the tracing UI");
        let href = browser.eval(&format!(
            "return document.querySelector('{TRACE_LINK}').getAttribute('href')"
        ));
        assert_eq!(href, format!("{TRACES}{trace_id}"), "the trace link");
    } else {
        assert_eq!(browser.count(TRACE_LINK), 0, "no tracing UI, no link");
    }
    assert!(
        browser.text("body").contains("slowpoke"),
        "the input and outputs are shown"
    );
    if shoot {
        browser.screenshot("request");
    }
    browser.assert_no_errors("request page");
}

/// A failed request shows its failure; the retry button runs it again (it fails again: its
/// input is at fault, and the failure says so).
fn failure_and_retry(browser: &Browser, kyc: &Service) {
    let state = kyc
        .post("/flow/kyc?wait=20", &json!({"user_id": ""}))
        .expect(StatusCode::OK);
    assert_eq!(state["status"], "failed", "{state}");
    let id = state["request_id"].as_str().unwrap().to_owned();
    request_page(browser, &id);
    browser.wait_for(
        "[data-request-status][data-status=\"failed\"]",
        "the request shows failed",
    );
    browser.wait_for("[data-failure=\"get_kyc_image\"]", "the vertex's failure");
    assert!(
        browser
            .text("[data-failure=\"get_kyc_image\"]")
            .contains("`user_id` is empty"),
        "the failure's detail is shown"
    );
    browser.click("button[data-action=\"retry\"]");
    let path = format!("/flow/kyc/requests/{id}");
    let retried = kyc.poll(&path, "the retry button re-runs the request", |s| {
        s["retries"] == 1 && s["status"] == "failed"
    });
    assert_eq!(
        reply::vertex(&retried, "get_kyc_image")["attempts"],
        2,
        "{retried}"
    );
    browser.wait_for(
        "[data-request-status][data-status=\"failed\"]",
        "the retried request shows failed again",
    );
    browser.assert_no_errors("a failed request's page");
}

/// The failed requests are among the dead letters; a bulk retry of the `failed` tab, once
/// confirmed, retries them and says how many.
fn dead_letters_and_bulk_retry(browser: &Browser, kyc: &Service) {
    let state = kyc
        .post("/flow/kyc?wait=20", &json!({"user_id": ""}))
        .expect(StatusCode::OK);
    let id = state["request_id"].as_str().unwrap().to_owned();
    browser.goto("#/flow/kyc");
    browser.wait_for(
        &format!("[data-dead] tr[data-dead-request=\"{id}\"]"),
        "the failed request is a dead letter",
    );
    browser.click("[data-tab=\"failed\"]");
    browser.wait_for(
        &format!("tr[data-request=\"{id}\"][data-status=\"failed\"]"),
        "the failed tab lists it",
    );
    let failed = kyc.get("/flow/kyc/requests/counts").expect(StatusCode::OK)["failed"]
        .as_u64()
        .unwrap();
    browser.click("button[data-bulk=\"retry\"]");
    browser.wait_for("[data-confirm]", "a confirmation");
    browser.click("button[data-confirm-yes]");
    let path = format!("/flow/kyc/requests/{id}");
    kyc.poll(&path, "the bulk retry retries it", |s| {
        s["retries"] == 1 && s["status"] == "failed"
    });
    browser.wait_for("[data-banner=\"info\"]", "the outcome is shown");
    let outcome = browser.text("[data-banner=\"info\"]");
    assert!(
        outcome.contains(&format!("{failed} matched")),
        "the banner says how many matched ({failed}): {outcome}"
    );
    browser.assert_no_errors("dead letters and bulk retry");
}

/// The pause, resume and stop buttons change the request's status.
fn pause_resume_stop(browser: &Browser, kyc: &Service) {
    let reply = kyc.post("/flow/kyc", &json!({"user_id": "slowcontrol"}));
    let path = location(&reply);
    let id = id_in(&path).to_owned();
    request_page(browser, &id);
    let shows = |status: &str| format!("[data-request-status][data-status=\"{status}\"]");
    browser.wait_for("button[data-action=\"pause\"]", "a pause button");
    browser.click("button[data-action=\"pause\"]");
    browser.wait_for(&shows("paused"), "pause pauses");
    assert_eq!(kyc.get(&path).expect(StatusCode::OK)["status"], "paused");
    browser.click("button[data-action=\"resume\"]");
    browser.wait_gone(&shows("paused"), "resume resumes");
    browser.click("button[data-action=\"stop\"]");
    browser.wait_for(&shows("stopped"), "stop stops");
    assert_eq!(kyc.get(&path).expect(StatusCode::OK)["status"], "stopped");
    browser.assert_no_errors("the controls");
}

/// Everything above, on one service.
/// `traced`: the service links trace ids to a tracing UI.
fn round_trip(cluster: &mut Cluster, kyc: &Service, shoot: bool, traced: bool) {
    let driver = Driver::start(&cluster.dir);
    let profile = cluster.dir.join("chromium-profile");
    let browser = Browser::open(&driver, kyc, &profile, screenshots_dir(&cluster.dir));
    overview(&browser, false);
    live_list(&browser, kyc);
    slow_request_graph(&browser, kyc, shoot, traced);
    failure_and_retry(&browser, kyc);
    pause_resume_stop(&browser, kyc);
    dead_letters_and_bulk_retry(&browser, kyc);
    if shoot {
        // The overview and the flow page once they have requests of every kind to show.
        overview(&browser, true);
        browser.goto("#/flow/kyc");
        browser.wait_for("tr[data-request][data-status=\"stopped\"]", "the requests");
        browser.screenshot("flow");
        browser.assert_no_errors("flow page");
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn the_dashboard_on_the_embedded_engine() {
    let mut cluster = Cluster::new("dashboard-embedded");
    let kyc = cluster.kyc("kyc", &[]);
    round_trip(&mut cluster, &kyc, true, false);
}

#[test]
fn the_dashboard_on_redis_with_two_workers() {
    let mut cluster = Cluster::new("dashboard-redis");
    let redis = cluster.redis();
    let env = vec![
        ("GOFLOW_REDIS_URL", redis),
        ("GOFLOW_REDIS_PREFIX", unique("dashboard")),
    ];
    let mut service_env = env.clone();
    service_env.push(("GOFLOW_TRACE_URL", format!("{TRACES}{{trace_id}}")));
    let kyc = cluster.kyc("kyc", &service_env);
    cluster.worker("worker-a", &env);
    cluster.worker("worker-b", &env);
    round_trip(&mut cluster, &kyc, false, true);
    // The overview lists the workers of the flow: the service's own and the two.
    let workers = kyc.get("/flow/kyc/workers").expect(StatusCode::OK);
    assert!(
        workers["workers"].as_array().is_some_and(|w| w.len() >= 3),
        "{workers}"
    );
}

#[test]
fn read_only_mode_shows_no_actions() {
    let mut cluster = Cluster::new("dashboard-read-only");
    let kyc = cluster.kyc("kyc", &[("GOFLOW_DASHBOARD", "read-only".to_owned())]);
    let failed = kyc
        .post("/flow/kyc?wait=20", &json!({"user_id": ""}))
        .expect(StatusCode::OK);
    let id = failed["request_id"].as_str().unwrap().to_owned();
    let driver = Driver::start(&cluster.dir);
    let profile = cluster.dir.join("chromium-profile");
    let browser = Browser::open(&driver, &kyc, &profile, screenshots_dir(&cluster.dir));
    let actions = "button[data-action], [data-bulk], #submit-form";
    browser.goto("#/flow/kyc");
    browser.wait_for(&format!("tr[data-request=\"{id}\"]"), "the list");
    assert_eq!(browser.count(actions), 0, "the flow page has no actions");
    request_page(&browser, &id);
    browser.wait_for("[data-failure=\"get_kyc_image\"]", "the failure");
    assert_eq!(browser.count(actions), 0, "the request page has no actions");
    browser.assert_no_errors("read-only pages");
}

#[test]
fn the_login_form_takes_the_token() {
    let mut cluster = Cluster::new("dashboard-token");
    let kyc = cluster.kyc("kyc", &[("GOFLOW_API_TOKEN", "let-me-in".to_owned())]);
    let driver = Driver::start(&cluster.dir);
    let profile = cluster.dir.join("chromium-profile");
    let browser = Browser::open(&driver, &kyc, &profile, screenshots_dir(&cluster.dir));
    browser.goto("#/");
    browser.wait_for("#login-form #token", "the login form");
    // The 401 that brought the form is the browser's to log as a failed load; what matters
    // is that the page asks for the token instead of failing.
    let _ = browser.console_errors();
    let client = browser.client();
    browser
        .runtime
        .block_on(async {
            let field = client.find(Locator::Css("#token")).await?;
            field.send_keys("let-me-in").await?;
            client
                .find(Locator::Css(
                    "#login-form [type=\"submit\"], #login-form button",
                ))
                .await?
                .click()
                .await
        })
        .expect("sign in");
    browser.wait_for("[data-flow-card=\"kyc\"]", "the overview, once signed in");
    browser.wait_gone("#login-form", "the login form goes");
    browser.assert_no_errors("signed in");
}

#[test]
fn the_versions_of_a_flow_its_waiting_requests_and_a_migration() {
    let mut cluster = Cluster::new("dashboard-versions");
    let redis = cluster.redis();
    let prefix = unique("versions");
    let env = |version: &str, role: &str| {
        vec![
            ("GOFLOW_REDIS_URL", redis.clone()),
            ("GOFLOW_REDIS_PREFIX", prefix.clone()),
            ("GOFLOW_ROLLOUT_VERSION", version.to_owned()),
            ("GOFLOW_ROLLOUT_ROLE", role.to_owned()),
        ]
    };
    // Version 1's API without a worker: its request waits. Version 2 serves, with its worker.
    let old = cluster.service("rollout-v1-api", Path::new(ROLLOUT), &env("1", "api"));
    let v1 = old.get("/flow/rollout").expect(StatusCode::OK)["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = location(&old.post("/flow/rollout", &json!("late")));
    let id = id_in(&path).to_owned();
    let new = cluster.service("rollout-v2", Path::new(ROLLOUT), &env("2", "serve"));
    let fresh = new
        .post("/flow/rollout?wait=20", &json!("new"))
        .expect(StatusCode::OK);
    assert_eq!(fresh["output"], "v2:new+enriched", "{fresh}");

    let driver = Driver::start(&cluster.dir);
    let profile = cluster.dir.join("chromium-profile");
    let browser = Browser::open(&driver, &new, &profile, screenshots_dir(&cluster.dir));
    browser.goto("#/flow/rollout");
    browser.wait_for(
        &format!("tr[data-request=\"{id}\"] .tag[data-old-version=\"{v1}\"][data-waiting]"),
        "the old version's request, marked waiting",
    );
    let fresh_id = fresh["request_id"].as_str().unwrap();
    browser.wait_for(
        &format!("tr[data-request=\"{fresh_id}\"]"),
        "the new request",
    );
    assert_eq!(
        browser.count(&format!("tr[data-request=\"{fresh_id}\"] .tag")),
        0,
        "a request of this version is not marked"
    );
    browser.wait_for(
        &format!("tr[data-version-row=\"{v1}\"][data-state=\"draining\"]"),
        "version 1, draining",
    );
    browser.assert_no_errors("the flow page of two versions");

    browser.goto(&format!("#/flow/rollout/requests/{id}"));
    browser.wait_for(
        "[data-waiting-for]:not([hidden])",
        "what the request waits for",
    );
    assert_eq!(browser.text("[data-version]"), v1);
    // Its graph is its own version's: without version 2's `enrich`.
    browser.wait_for("g[data-vertex=\"finish\"]", "a graph drawn");
    browser.wait_gone("g[data-vertex=\"enrich\"]", "version 1's graph drawn");
    browser.click("button[data-action=\"migrate\"]");
    browser.wait_for(
        "[data-request-status][data-status=\"completed\"]",
        "the migrated request completes",
    );
    browser.wait_gone(
        "button[data-action=\"migrate\"]",
        "no migration is offered any more",
    );
    browser.wait_for(
        "g[data-vertex=\"enrich\"][data-status=\"done\"]",
        "version 2's graph, where it ran",
    );
    let state = new.get(&path).expect(StatusCode::OK);
    assert_eq!(state["output"], "v2:late+enriched", "{state}");
    assert_ne!(state["version"], v1.as_str(), "{state}");
    assert_eq!(
        browser.text("[data-version]"),
        state["version"].as_str().unwrap()
    );
    browser.assert_no_errors("the migration");
}
