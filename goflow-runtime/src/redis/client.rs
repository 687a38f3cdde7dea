//! The client side of the Redis engine: submit requests, read their state, wait for them,
//! pause, resume and stop them. Needs no worker in the same process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{HashesInterface, PubsubInterface, StreamsInterface, Value};
use tokio::sync::{oneshot, OnceCell};
use tracing::Instrument as _;

use super::keys::fields;
use super::scripts::{self, CONTROL, SUBMIT};
use super::{millis, now_ms, DoneEvent, EngineError, RedisEngine};
use crate::codec::Codec;
use crate::error::Error;
use crate::node::Data as _;
use crate::plan::{Instance, Slot};
use crate::request_id::RequestId;
use crate::state::{RequestFailure, RequestOutcome, RequestState, RequestStatus, Transition};
use crate::workflow::Workflow;

/// A request being waited for: its workflow and id.
type WaitKey = (&'static str, RequestId);

/// Requests being waited for, woken by the listener of the completion streams.
#[derive(Default)]
pub(crate) struct Waiters {
    /// Each woken with the request's done event: a completed request's small output comes
    /// with it, which spares the waiter a read of the request's state.
    waiting: Mutex<HashMap<WaitKey, Vec<oneshot::Sender<DoneEvent>>>>,
    listener: OnceCell<()>,
}

/// How a wait for a request's end came out.
enum Waited {
    /// No such request (or it has expired).
    Missing,
    /// Its done event arrived.
    Ended(DoneEvent),
    /// It had ended before the wait, or the wait timed out: its state tells.
    Read,
}

impl<C: Codec> RedisEngine<C> {
    /// Submits a request of `W` under a fresh id.
    pub async fn submit<W: Workflow>(&self, input: &W::Input) -> Result<RequestId, EngineError> {
        let id = RequestId::generate();
        self.submit_as::<W>(id.clone(), input).await?;
        Ok(id)
    }

    /// Submits a request of `W` under `id`, unless a request with that id exists: returns
    /// `true` if this call created it. The same id never starts a second run, which makes
    /// retried submissions safe.
    pub async fn submit_as<W: Workflow>(
        &self,
        id: RequestId,
        input: &W::Input,
    ) -> Result<bool, EngineError> {
        let input = input.encode_with(&self.inner.codec)?;
        self.submit_encoded(W::NAME, &id, input).await
    }

    /// [`submit_as`](Self::submit_as) for an already encoded input (the HTTP service decodes
    /// and re-encodes it with the engine's codec).
    pub async fn submit_encoded(
        &self,
        flow: &str,
        id: &RequestId,
        input: Bytes,
    ) -> Result<bool, EngineError> {
        let flow = self.flow(flow)?;
        let config = &self.inner.config;
        // The request's span, under the caller's (the HTTP request's, when submitted over
        // HTTP): every vertex span of the request descends from it, in whatever process.
        let span = tracing::info_span!(
            "goflow.request",
            flow = flow.plan.flow(),
            request_id = id.as_str()
        );
        let traceparent = crate::trace::hand_on(&span, None);
        let reply = scripts::call(&SUBMIT, &self.inner.client, || {
            let keys = vec![flow.keys.request(id), flow.keys.ready.clone()];
            let args = vec![
                Value::from(id.as_str()),
                Value::Bytes(input.clone()),
                Value::from(now_ms().to_string()),
                Value::from(Instance::root(flow.plan.entry()).key()),
                Value::from(millis(config.unfinished_ttl).to_string()),
                Value::from(flow.hash.as_str()),
                Value::from(traceparent.as_str()),
                Value::from(fields::slot(&Slot::Input)),
                Value::from(
                    if input.len() <= config.inline_input_limit && !input.is_empty() {
                        "1"
                    } else {
                        "0"
                    },
                ),
            ];
            (keys, args)
        })
        .instrument(span)
        .await?;
        let created = reply.into_array().first().and_then(Value::as_i64) == Some(1);
        if created {
            // Counted by the one call whose script created the request.
            crate::metrics::flow_started(flow.plan.flow());
        }
        Ok(created)
    }

    /// The state of a request; `None` if there is no such request (or it has expired).
    pub async fn status(
        &self,
        flow: &str,
        id: &RequestId,
    ) -> Result<Option<RequestState>, EngineError> {
        let entry = self.flow(flow)?;
        let fields: HashMap<String, Bytes> =
            self.inner.client.hgetall(entry.keys.request(id)).await?;
        Ok(RequestState::from_fields(&entry.plan, id.clone(), fields))
    }

    /// Waits up to `timeout` for a request of workflow `flow` to end, and returns its state
    /// then (ended or not); `None` if there is no such request.
    pub async fn wait_state(
        &self,
        flow: &str,
        id: &RequestId,
        timeout: Duration,
    ) -> Result<Option<RequestState>, EngineError> {
        if let Waited::Missing = self.wait_until_final(flow, id, timeout).await? {
            return Ok(None);
        }
        self.status(flow, id).await
    }

    /// Waits up to `timeout` for the request to end. Reads only the status field until then:
    /// the state is read once, by the caller, if the done event does not tell it all.
    async fn wait_until_final(
        &self,
        flow: &str,
        id: &RequestId,
        timeout: Duration,
    ) -> Result<Waited, EngineError> {
        let entry = self.flow(flow)?;
        let flow: &'static str = entry.plan.flow();
        let key = entry.keys.request(id);
        let woken = self.register_waiter(flow, id).await?;
        let status: Result<Option<String>, _> = self.inner.client.hget(&key, "st").await;
        let waited = match status {
            Err(error) => {
                drop(woken);
                self.forget_waiter(flow, id);
                return Err(error.into());
            }
            Ok(None) => Waited::Missing,
            Ok(Some(status))
                if RequestStatus::parse(&status).is_some_and(RequestStatus::is_final) =>
            {
                Waited::Read
            }
            Ok(Some(_)) => match tokio::time::timeout(timeout, woken).await {
                Ok(Ok(ended)) => Waited::Ended(ended),
                // Timed out: the state says that it has not ended.
                _ => Waited::Read,
            },
        };
        self.forget_waiter(flow, id);
        Ok(waited)
    }

    /// Waits up to `timeout` for a request of `W` to end.
    pub async fn wait<W: Workflow>(
        &self,
        id: &RequestId,
        timeout: Duration,
    ) -> Result<RequestOutcome<W::Output>, EngineError> {
        match self.wait_until_final(W::NAME, id, timeout).await? {
            Waited::Missing => Err(missing::<W>(id)),
            Waited::Ended(ended) => self.outcome::<W>(id, Some(ended)).await,
            Waited::Read => self.outcome::<W>(id, None).await,
        }
    }

    /// The outcome of a request from its done event when that tells it all (a stop, or a
    /// completion with its output), else from its state.
    async fn outcome<W: Workflow>(
        &self,
        id: &RequestId,
        ended: Option<DoneEvent>,
    ) -> Result<RequestOutcome<W::Output>, EngineError> {
        match ended {
            Some(DoneEvent {
                status: RequestStatus::Completed,
                output: Some(output),
                ..
            }) => {
                return Ok(RequestOutcome::Completed(W::Output::decode_with(
                    &self.inner.codec,
                    &output,
                )?))
            }
            Some(DoneEvent {
                status: RequestStatus::Stopped,
                ..
            }) => return Ok(RequestOutcome::Stopped),
            _ => {}
        }
        // Only what the outcome needs, not the whole state.
        let key = self.flow(W::NAME)?.keys.request(id);
        let (status, output, failure): (Option<String>, Option<Bytes>, Option<Bytes>) = self
            .inner
            .client
            .hmget(&key, vec!["st", "out", "err"])
            .await?;
        let status = status
            .as_deref()
            .and_then(RequestStatus::parse)
            .ok_or_else(|| missing::<W>(id))?;
        Ok(match status {
            RequestStatus::Completed => {
                let output = output.ok_or_else(|| {
                    EngineError::Protocol(format!("completed request `{id}` has no output"))
                })?;
                RequestOutcome::Completed(W::Output::decode_with(&self.inner.codec, &output)?)
            }
            RequestStatus::Failed => {
                let failure = failure
                    .and_then(|f| serde_json::from_slice::<RequestFailure>(&f).ok())
                    .ok_or_else(|| {
                        EngineError::Protocol(format!("failed request `{id}` has no failure"))
                    })?;
                RequestOutcome::Failed(failure)
            }
            RequestStatus::Stopped => RequestOutcome::Stopped,
            status => RequestOutcome::Pending(status),
        })
    }

    /// Submits a request of `W` and waits for it to end, reporting failures as the embedded
    /// engine does. The request id is generated.
    ///
    /// It listens for the request's end before submitting it, so a small output
    /// ([`RedisConfig::inline_output_limit`](super::RedisConfig::inline_output_limit)) comes
    /// with the done event: the submit script is the only command this sends.
    pub async fn run<W: Workflow>(&self, input: W::Input) -> Result<W::Output, Error> {
        let engine_error = |e: EngineError| Error::Engine {
            flow: W::NAME,
            message: e.to_string(),
        };
        let id = RequestId::generate();
        let woken = self
            .register_waiter(W::NAME, &id)
            .await
            .map_err(engine_error)?;
        let submitted = self.submit_as::<W>(id.clone(), &input).await;
        let ended = match submitted {
            // Ours, so not ended before the listening began: its done event will come.
            Ok(true) => tokio::time::timeout(Duration::from_secs(3600), woken)
                .await
                .ok()
                .and_then(Result::ok),
            // A generated id is never taken, but if it were, that request's state tells.
            Ok(false) => None,
            Err(error) => {
                drop(woken);
                self.forget_waiter(W::NAME, &id);
                return Err(engine_error(error));
            }
        };
        self.forget_waiter(W::NAME, &id);
        let mut outcome = match ended {
            Some(ended) => self.outcome::<W>(&id, Some(ended)).await,
            None => self.wait::<W>(&id, Duration::from_secs(3600)).await,
        };
        loop {
            match outcome.map_err(engine_error)? {
                RequestOutcome::Completed(output) => return Ok(output),
                RequestOutcome::Failed(failure) => {
                    return Err(Error::Failed {
                        flow: W::NAME,
                        vertex: failure.vertex,
                        attempts: failure.attempts,
                        failure: failure.failure,
                    })
                }
                RequestOutcome::Stopped => {
                    return Err(Error::Stopped {
                        flow: W::NAME,
                        request_id: id,
                    })
                }
                RequestOutcome::Pending(_) => {
                    outcome = self.wait::<W>(&id, Duration::from_secs(3600)).await;
                }
            }
        }
    }

    /// Pauses a request: vertices not yet started wait until it is resumed.
    pub async fn pause(&self, flow: &str, id: &RequestId) -> Result<Transition, EngineError> {
        self.control(flow, id, "pause").await
    }

    /// Resumes a paused request.
    pub async fn resume(&self, flow: &str, id: &RequestId) -> Result<Transition, EngineError> {
        self.control(flow, id, "resume").await
    }

    /// Stops a request now; its running attempts are cancelled.
    pub async fn stop(&self, flow: &str, id: &RequestId) -> Result<Transition, EngineError> {
        let transition = self.control(flow, id, "stop").await?;
        if transition == Transition::Done(RequestStatus::Stopped) {
            // The control script stopped it just now (it answers `conflict` to a request that
            // has ended), so this is the request's one end.
            crate::metrics::flow_finished(self.flow(flow)?.plan.flow(), RequestStatus::Stopped);
            // Workers cancel the request's running attempts; one that misses this message
            // still cannot record anything, as the request is stopped.
            let channel = control_channel(&self.inner.config.prefix);
            self.inner
                .client
                .publish::<(), _, _>(channel, format!("{flow} {id}"))
                .await?;
        }
        Ok(transition)
    }

    async fn control(
        &self,
        flow: &str,
        id: &RequestId,
        action: &str,
    ) -> Result<Transition, EngineError> {
        let entry = self.flow(flow)?;
        let reply = scripts::call(&CONTROL, &self.inner.client, || {
            let keys = vec![
                entry.keys.request(id),
                entry.keys.ready.clone(),
                entry.keys.parked(id),
                entry.keys.done.clone(),
            ];
            let args = vec![
                Value::from(action),
                Value::from(id.as_str()),
                Value::from(now_ms().to_string()),
                Value::from(millis(self.inner.config.retention).to_string()),
                Value::from(super::worker::GROUP),
            ];
            (keys, args)
        })
        .await?;
        let reply = reply.into_array();
        let word = |i: usize| reply.get(i).and_then(|v| v.as_str().map(|s| s.to_string()));
        let status = word(1).as_deref().and_then(RequestStatus::parse);
        match (word(0).as_deref(), status) {
            (Some("ok"), Some(status)) => Ok(Transition::Done(status)),
            (Some("conflict"), Some(status)) => Ok(Transition::Conflict(status)),
            (Some("missing"), _) => Ok(Transition::Missing),
            _ => Err(EngineError::Protocol(format!(
                "control script answered {reply:?}"
            ))),
        }
    }

    /// Listens for the done event of a request of `flow` (the listener starts on first use):
    /// any event after this call reaches the receiver. Undone by
    /// [`forget_waiter`](Self::forget_waiter), once the receiver is dropped.
    async fn register_waiter(
        &self,
        flow: &'static str,
        id: &RequestId,
    ) -> Result<oneshot::Receiver<DoneEvent>, EngineError> {
        self.start_listener().await?;
        let (tx, rx) = oneshot::channel();
        let mut waiting = self
            .inner
            .waiters
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        waiting.entry((flow, id.clone())).or_default().push(tx);
        Ok(rx)
    }

    fn forget_waiter(&self, flow: &'static str, id: &RequestId) {
        let mut waiting = self
            .inner
            .waiters
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(senders) = waiting.get_mut(&(flow, id.clone())) {
            senders.retain(|s| !s.is_closed());
            if senders.is_empty() {
                waiting.remove(&(flow, id.clone()));
            }
        }
    }

    /// Starts (once) the task that reads the completion streams of all registered workflows
    /// and wakes waiters. It starts from each stream's current end, read before any wait
    /// checks a request's state, so no completion falls between the two.
    async fn start_listener(&self) -> Result<(), EngineError> {
        self.inner
            .waiters
            .listener
            .get_or_try_init(|| async {
                let client = super::connect_client(&self.inner.config.url, None).await?;
                let mut flows = Vec::new();
                for (name, flow) in &self.inner.flows {
                    let last: Vec<super::DoneEntry> = client
                        .xrevrange_values(flow.keys.done.clone(), "+", "-", Some(1))
                        .await?;
                    let from = last
                        .first()
                        .map_or_else(|| "0-0".to_owned(), |(id, _)| id.clone());
                    flows.push((*name, flow.keys.done.clone(), from));
                }
                let inner = std::sync::Arc::downgrade(&self.inner);
                tokio::spawn(listen(inner, client, flows));
                Ok::<(), EngineError>(())
            })
            .await?;
        Ok(())
    }
}

/// The error for a request that does not exist.
fn missing<W: Workflow>(id: &RequestId) -> EngineError {
    EngineError::Protocol(format!("request `{id}` of `{}` does not exist", W::NAME))
}

/// Reads completions until the engine is dropped.
async fn listen<C: Codec>(
    inner: std::sync::Weak<super::Inner<C>>,
    client: fred::prelude::Client,
    mut flows: Vec<(&'static str, String, String)>,
) {
    loop {
        let keys: Vec<String> = flows.iter().map(|(_, key, _)| key.clone()).collect();
        let ids: Vec<String> = flows.iter().map(|(_, _, id)| id.clone()).collect();
        let read: Result<super::DoneRead, _> =
            client.xread_map(Some(1000), Some(1000), keys, ids).await;
        let Some(inner) = inner.upgrade() else {
            let _ = fred::prelude::ClientLike::quit(&client).await;
            return;
        };
        match read {
            Ok(streams) => {
                let mut waiting = inner
                    .waiters
                    .waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                for (name, key, last) in &mut flows {
                    for (entry_id, fields) in streams.get(key.as_str()).into_iter().flatten() {
                        *last = entry_id.clone();
                        let Some(event) = DoneEvent::parse(fields) else {
                            continue;
                        };
                        let woken = waiting.remove(&(*name, event.request.clone()));
                        for waiter in woken.into_iter().flatten() {
                            let _ = waiter.send(event.clone());
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "reading completion streams failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The pub/sub channel on which stop requests reach the workers.
pub(crate) fn control_channel(prefix: &str) -> String {
    format!("{prefix}:control")
}
