//! The embedded engine: runs workflows in-process on tokio, with the same plan, attempt runner
//! and join rule as the Redis engine, and no I/O.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::codec::{Codec, MsgPack};
use crate::context::Context;
use crate::error::Error;
use crate::exec::{self, Outcome};
use crate::node::Data as _;
use crate::plan::{Plan, VertexId};
use crate::request_id::RequestId;
use crate::workflow::Workflow;

/// Runs workflows in this process.
///
/// ```
/// # use goflow_runtime::Embedded;
/// let engine = Embedded::new();
/// // engine.run::<Kyc>(input).await
/// # drop(engine);
/// ```
pub struct Embedded<C: Codec = MsgPack> {
    codec: C,
    plans: Mutex<HashMap<TypeId, Arc<Plan>>>,
}

impl Embedded<MsgPack> {
    /// An engine with the default codec.
    pub fn new() -> Self {
        Self::with_codec(MsgPack)
    }
}

impl Default for Embedded<MsgPack> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Codec> Embedded<C> {
    /// An engine passing payloads through `codec`.
    pub fn with_codec(codec: C) -> Self {
        Self {
            codec,
            plans: Mutex::new(HashMap::new()),
        }
    }

    /// The plan of workflow `W`, built on first use.
    pub fn plan<W: Workflow>(&self) -> Arc<Plan> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            plans
                .entry(TypeId::of::<W>())
                .or_insert_with(|| Arc::new(Plan::new::<W, C>(self.codec.clone()))),
        )
    }

    /// Runs one request of `W` to completion under a fresh request id.
    pub async fn run<W: Workflow>(&self, input: W::Input) -> Result<W::Output, Error> {
        self.run_as::<W>(RequestId::generate(), input).await
    }

    /// Runs one request of `W` to completion under the given request id.
    pub async fn run_as<W: Workflow>(
        &self,
        request_id: RequestId,
        input: W::Input,
    ) -> Result<W::Output, Error> {
        run_typed::<W, C>(self.plan::<W>(), self.codec.clone(), request_id, input).await
    }
}

/// Encodes the input, executes, decodes the output.
pub(crate) async fn run_typed<W: Workflow, C: Codec>(
    plan: Arc<Plan>,
    codec: C,
    request_id: RequestId,
    input: W::Input,
) -> Result<W::Output, Error> {
    let codec_error = |source| Error::Codec {
        flow: W::NAME,
        source,
    };
    let input = input.encode_with(&codec).map_err(codec_error)?;
    let output = execute(plan, request_id, input).await?;
    W::Output::decode_with(&codec, &output).map_err(codec_error)
}

/// Executes one request of `plan` on encoded input; returns the encoded output of the exit.
///
/// Every vertex whose inputs are complete runs as its own task, so independent branches run in
/// parallel. The first vertex to fail for good fails the request: the others are cancelled
/// (their `Context` reports it, and their tasks are aborted).
pub async fn execute(plan: Arc<Plan>, request_id: RequestId, input: Bytes) -> Result<Bytes, Error> {
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    // Declared after `tasks`, so dropped first: the cancellation is signalled before the
    // remaining vertex tasks are aborted.
    let _cancel_on_return = cancel.clone().drop_guard();
    let mut outputs: Vec<Option<Bytes>> = vec![None; plan.vertices().len()];
    let mut arrivals = plan.arrivals();
    spawn_vertex(
        &mut tasks,
        &plan,
        plan.entry(),
        vec![input],
        &request_id,
        &cancel,
    );

    while let Some(joined) = tasks.join_next().await {
        // Node panics are caught inside the task, so a join error is an engine bug.
        let (done, outcome) = joined.map_err(|e| Error::Internal {
            flow: plan.flow(),
            message: format!("vertex task ended abnormally: {e}"),
        })?;
        let Outcome { attempts, result } = outcome;
        let output = result.map_err(|failure| Error::Failed {
            flow: plan.flow(),
            vertex: plan.vertex(done).path().to_string(),
            attempts,
            failure,
        })?;
        if done == plan.exit() {
            // The exit is the only vertex without successors, so every other one has finished.
            return Ok(output);
        }
        outputs[done] = Some(output);
        let ready: Vec<VertexId> = plan.ready_after(done, &mut arrivals).collect();
        for next in ready {
            let parts = plan
                .vertex(next)
                .inputs()
                .iter()
                .map(|&parent| outputs[parent].clone())
                .collect::<Option<Vec<Bytes>>>()
                .ok_or_else(|| Error::Internal {
                    flow: plan.flow(),
                    message: format!(
                        "`{}` became ready before its inputs",
                        plan.vertex(next).path()
                    ),
                })?;
            spawn_vertex(&mut tasks, &plan, next, parts, &request_id, &cancel);
        }
    }
    Err(Error::Internal {
        flow: plan.flow(),
        message: "no vertex left to run before the exit vertex completed".to_owned(),
    })
}

fn spawn_vertex(
    tasks: &mut JoinSet<(VertexId, Outcome)>,
    plan: &Arc<Plan>,
    vertex: VertexId,
    parts: Vec<Bytes>,
    request_id: &RequestId,
    cancel: &CancellationToken,
) {
    let ctx = Context::new(
        plan.flow(),
        request_id.clone(),
        Arc::clone(plan.vertex(vertex).path()),
        1,
        cancel.clone(),
    );
    let plan = Arc::clone(plan);
    tasks.spawn(async move {
        let outcome = exec::with_retries(plan.vertex(vertex), &parts, &ctx).await;
        (vertex, outcome)
    });
}
