//! A flaky flow repaired from the command line: a checkout whose payment gateway is down fails
//! at `charge_card`; once the gateway is back, a retry runs `charge_card` and what follows it
//! under the same request id, and `reserve_stock`, which had completed, does not run again.
//!
//! ```sh
//! cargo run --example flaky_retry          # serves on localhost:8080 (GOFLOW_PORT)
//! ```
//!
//! Then, in another shell (the example prints these with its own paths):
//!
//! ```sh
//! curl -d '"order-7"' 'localhost:8080/flow/checkout?wait=5'        # failed at charge_card
//! touch "$TMPDIR/goflow-flaky-retry/gateway-up"                     # the gateway is back
//! curl -X POST localhost:8080/flow/checkout/requests/<id>/retry     # runs on from charge_card
//! curl 'localhost:8080/flow/checkout/requests/<id>?wait=5'          # completed, "retries": 1
//! curl -d '{"status": ["failed"]}' localhost:8080/flow/checkout/requests/actions/retry  # all
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use goflow::prelude::*;
use goflow::service::FlowService;

/// The file whose existence says the payment gateway is up.
fn gateway_up() -> PathBuf {
    std::env::temp_dir()
        .join("goflow-flaky-retry")
        .join("gateway-up")
}

/// How many times each order's stock was reserved: a retry must not reserve it again.
static RESERVATIONS: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(Mutex::default);

/// Reserves the order's stock (once per order, however often the checkout is retried).
#[node]
async fn reserve_stock(order: String) -> String {
    let mut reservations = RESERVATIONS.lock().unwrap_or_else(|e| e.into_inner());
    let times = reservations.entry(order.clone()).or_insert(0);
    *times += 1;
    format!("{order} (stock reserved {times} time(s))")
}

/// Charges the card; fails for good while the gateway is down (retrying at once would not
/// help: the operator retries the request once it is back).
#[node(retries = 1, backoff = "100ms")]
async fn charge_card(reserved: String) -> Result<String, NodeError> {
    if !gateway_up().exists() {
        return Err(NodeError::new(format!(
            "the payment gateway is down (it is up once {} exists)",
            gateway_up().display()
        )));
    }
    Ok(format!("{reserved}, charged"))
}

/// Writes the receipt.
#[node]
async fn receipt(charged: String) -> String {
    format!("receipt: {charged}")
}

workflow! {
    /// Reserves stock, charges the card, writes a receipt.
    pub Checkout = reserve_stock -> charge_card -> receipt;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flag = gateway_up();
    if let Some(dir) = flag.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Each run starts with the gateway down.
    let _ = std::fs::remove_file(&flag);
    let service = FlowService::from_env()?.register::<Checkout>();
    let settings = service.settings();
    let host = match settings.host.as_str() {
        "0.0.0.0" | "::" => "localhost",
        host => host,
    };
    let addr = format!("{host}:{}", settings.port);
    println!("the payment gateway is down; try, in another shell:\n");
    println!("  curl -d '\"order-7\"' 'http://{addr}/flow/checkout?wait=5'");
    println!("  touch {}", flag.display());
    println!("  curl -X POST http://{addr}/flow/checkout/requests/<request_id>/retry");
    println!("  curl 'http://{addr}/flow/checkout/requests/<request_id>?wait=5'\n");
    service.start().await?;
    Ok(())
}
