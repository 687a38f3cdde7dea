//! The dashboard on graphs of every shape: a for-each (`payroll`: one payment per employee,
//! some of them slow, a few failing once before their retry), a conditional (`screening`:
//! clear applicants are approved, doubtful ones go to a slow manual review) and a
//! sub-workflow (`hire`: registration, `screening`, a welcome).
//!
//! ```sh
//! cargo run --example dashboard            # serves on localhost:8080 (GOFLOW_PORT)
//! ```
//!
//! Open <http://localhost:8080/ui>, pick a flow and submit a request with its form (or with
//! the `curl` lines the example prints): the request's page draws the graph live, for-each
//! bodies with a count per status of their instances, the arm that was not taken as skipped.

use std::time::Duration;

use goflow::prelude::*;
use goflow::service::FlowService;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A team to pay.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Team {
    /// Its name.
    pub name: String,
    /// How many employees it has (at most 50).
    pub size: u32,
}

/// One employee of a team.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Employee {
    /// Their name.
    pub name: String,
    /// Their salary, in cents.
    pub salary: u64,
}

/// One payment made.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Payment {
    /// Who was paid.
    pub name: String,
    /// How much, in cents.
    pub amount: u64,
}

/// What a payroll run paid.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PayrollSummary {
    /// How many payments.
    pub payments: usize,
    /// Their total, in cents.
    pub total: u64,
}

/// Lists the team's employees.
#[node]
async fn list_team(team: Team) -> Vec<Employee> {
    (0..team.size.min(50))
        .map(|i| Employee {
            name: format!("{}-{i}", team.name),
            salary: 300_000 + u64::from(i) * 1_000,
        })
        .collect()
}

/// Pays one employee: the bank takes its time, and every seventh transfer is refused once
/// (the retry goes through).
#[node(retries = 2, backoff = "200ms", timeout = "10s")]
async fn pay(ctx: Context, employee: Employee) -> Result<Payment, NodeError> {
    tokio::time::sleep(Duration::from_millis(200 + fastrand::u64(..800))).await;
    if employee.salary % 7_000 == 0 && ctx.attempt() == 1 {
        return Err(NodeError::new(
            "the bank refused the transfer; trying again",
        ));
    }
    Ok(Payment {
        name: employee.name,
        amount: employee.salary,
    })
}

/// Sums the payments.
#[node]
async fn payslip_summary(payments: Vec<Payment>) -> PayrollSummary {
    PayrollSummary {
        payments: payments.len(),
        total: payments.iter().map(|p| p.amount).sum(),
    }
}

/// Someone applying for a job.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Applicant {
    /// Their name.
    pub name: String,
}

/// What the background check found: each variant carries what its arm needs.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub enum Background {
    /// Nothing to worry about.
    Clear(Applicant),
    /// A person has to look at it.
    Doubt(Applicant),
}

/// The decision on an applicant.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Decision {
    /// Who.
    pub name: String,
    /// Whether they are hired.
    pub hired: bool,
    /// Why.
    pub note: String,
}

/// Checks the applicant's background (names of an odd length raise a doubt).
#[node]
async fn check_background(applicant: Applicant) -> Background {
    tokio::time::sleep(Duration::from_millis(300)).await;
    if applicant.name.len() % 2 == 1 {
        Background::Doubt(applicant)
    } else {
        Background::Clear(applicant)
    }
}

/// The `Clear` arm.
#[node]
async fn approve(applicant: Applicant) -> Decision {
    Decision {
        name: applicant.name,
        hired: true,
        note: "background clear".into(),
    }
}

/// The `Doubt` arm, first step: a person reviews the case (slowly).
#[node]
async fn manual_review(applicant: Applicant) -> Applicant {
    tokio::time::sleep(Duration::from_secs(3)).await;
    applicant
}

/// The `Doubt` arm, second step.
#[node]
async fn decide(applicant: Applicant) -> Decision {
    Decision {
        name: applicant.name,
        hired: true,
        note: "hired after a manual review".into(),
    }
}

/// Runs after whichever arm ran.
#[node]
async fn notify(decision: Decision) -> Decision {
    decision
}

/// Registers the applicant (trims the name).
#[node]
async fn register(applicant: Applicant) -> Applicant {
    Applicant {
        name: applicant.name.trim().to_owned(),
    }
}

/// Welcomes a hire.
#[node]
async fn welcome(decision: Decision) -> String {
    if decision.hired {
        format!("welcome aboard, {}", decision.name)
    } else {
        format!("sorry, {}", decision.name)
    }
}

workflow! {
    /// Pays every employee of a team: one payment per employee, then a summary.
    pub Payroll = list_team -> each { pay } => payslip_summary;
    /// Screens an applicant: approved at once, or after a manual review.
    pub Screening = check_background ? {
        Clear => approve,
        Doubt => manual_review -> decide,
    } -> notify;
    /// Hires an applicant: registration, the screening, a welcome.
    pub Hire = register -> Screening -> welcome;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = FlowService::from_env()?
        .register::<Payroll>()
        .register::<Screening>()
        .register::<Hire>();
    let settings = service.settings();
    let host = match settings.host.as_str() {
        "0.0.0.0" | "::" => "localhost",
        host => host,
    };
    let addr = format!("{host}:{}", settings.port);
    println!("open http://{addr}/ui, or submit from a shell:\n");
    println!("  curl -d '{{\"name\": \"ops\", \"size\": 20}}' http://{addr}/flow/payroll");
    println!("  curl -d '{{\"name\": \"Ada\"}}' http://{addr}/flow/screening");
    println!("  curl -d '{{\"name\": \"Grace\"}}' http://{addr}/flow/hire\n");
    service.start().await?;
    Ok(())
}
