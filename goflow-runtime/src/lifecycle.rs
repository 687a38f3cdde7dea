//! The life of a request and of its vertices, decided once for both engines.
//!
//! Everything here is pure (no I/O, no clock): the status vocabulary (the only place the words
//! exist in Rust), the control table (pause, resume and stop from each status), what a vertex
//! that becomes ready or starts does to its request, the retry policy, and the sweep that
//! settles every vertex when its request ends. The embedded engine applies these decisions in
//! memory; the Redis engine computes them in the worker and client, and its scripts get the
//! same words and tables from a prelude rendered from this module (see `redis::protocol`), so
//! that a rule changed here changes on both engines.
//!
//! # A request
//!
//! - `queued` → `running` when its first vertex starts ([`on_start`]);
//! - `queued` or `running` → `paused` on pause, and `paused` → `running` on resume;
//! - `running` → `completed` when the exit vertex completes, or `failed` when a vertex fails
//!   for good;
//! - `queued`, `running` or `paused` → `stopped` on stop;
//! - `failed` or `stopped` → `running` again on retry, under the same id.
//!
//! The controls from each status are the [control table](control); only a retry leaves a
//! final status, and never `completed`.
//!
//! # A vertex instance
//!
//! `pending` (waiting for its inputs) → `queued` (ready; `parked` instead while its request is
//! paused, `queued` again on resume) → `running` (an attempt runs; each attempt started counts,
//! the running one included) → `done`, or `retrying` (waiting for its backoff) → `running`
//! again, or `failed`. A conditional's untaken arms are `skipped`. When the request ends, the
//! [sweep] settles the rest as the state is read: none is shown `pending`, `queued`,
//! `parked`, `retrying` or `running`.
//!
//! # A retry
//!
//! A retry runs an ended request on from where it stopped: the instances that failed, were
//! cancelled, or were parked when it ended had all their inputs, and are queued again
//! ([`on_retry`]), their attempts counting on and their retry budget afresh; those done or
//! skipped stay so, and those still waiting for their inputs get them as their parents
//! complete. A retry from the start runs everything again from the input. The stored state of
//! an ended request is kept as it was for that (each engine applies [`on_end`] to what it knows
//! has stopped, and the sweep only to what it shows).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Failure;
use crate::node::NodeOptions;

/// Declares a status enum with its words: one `as_str`, one `FromStr`, one list of them all.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $word:literal, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// Every value, in the order of the lifecycle.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The word for it, as in JSON, in the Redis engine's state, and in `FromStr`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word,)*
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;

            fn from_str(word: &str) -> Result<Self, UnknownWord> {
                match word {
                    $($word => Ok(Self::$variant),)*
                    _ => Err(UnknownWord {
                        kind: stringify!($name),
                        word: word.chars().take(40).collect(),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// Where a request is in its life: `queued → running → completed | failed | stopped`, with
    /// `paused` in between.
    pub enum RequestStatus {
        /// Accepted; no vertex has started yet.
        Queued = "queued",
        /// At least one vertex has started.
        Running = "running",
        /// Paused: nothing new starts until it is resumed.
        Paused = "paused",
        /// The exit vertex produced the output.
        Completed = "completed",
        /// A vertex failed for good.
        Failed = "failed",
        /// Stopped on request.
        Stopped = "stopped",
    }
}

vocabulary! {
    /// Where a vertex instance is within its request.
    pub enum VertexStatus {
        /// Waiting for its inputs.
        Pending = "pending",
        /// Ready: its inputs are complete and it waits for a worker.
        Queued = "queued",
        /// An attempt is running.
        Running = "running",
        /// Waiting for its backoff before another attempt.
        Retrying = "retrying",
        /// Ready, but held back while the request is paused.
        Parked = "parked",
        /// Produced its output.
        Done = "done",
        /// Failed for good.
        Failed = "failed",
        /// Had been made ready (queued, parked, retrying or running) when its request ended
        /// (stopped, or failed elsewhere): it will not run, or its attempt was cancelled.
        Cancelled = "cancelled",
        /// Will never run: in an arm of a conditional that another arm was chosen over, or
        /// still waiting for its inputs when its request ended.
        Skipped = "skipped",
    }
}

vocabulary! {
    /// What an operator can do to a running request.
    pub enum Control {
        /// Hold back every vertex that has not started until the request is resumed.
        Pause = "pause",
        /// Run a paused request on: its parked vertices are queued, each once.
        Resume = "resume",
        /// End the request now: its running attempts are cancelled and nothing else runs.
        Stop = "stop",
        /// Run a failed or stopped request on: the instances that failed, were cancelled or
        /// were parked run again, with the outputs that completed kept.
        Retry = "retry",
        /// Run a failed or stopped request again from its input, every vertex anew.
        RetryFromStart = "retry_from_start",
    }
}

impl RequestStatus {
    /// Whether the request has ended: `completed`, `failed` or `stopped`.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Stopped)
    }
}

impl VertexStatus {
    /// Whether the instance is settled: `done`, `failed`, `cancelled` or `skipped`.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            Self::Done | Self::Failed | Self::Cancelled | Self::Skipped
        )
    }
}

/// A word that names no status (in a stored state, or in a query).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{word}` is not a {kind}; the words are those of its `as_str`")]
pub struct UnknownWord {
    kind: &'static str,
    word: String,
}

impl Control {
    /// Whether it is a retry (from where the request stopped, or from the start).
    pub const fn is_retry(self) -> bool {
        matches!(self, Self::Retry | Self::RetryFromStart)
    }

    /// The action in words, for messages: `pause`, …, `retry from the start`.
    pub const fn verb(self) -> &'static str {
        match self {
            Self::RetryFromStart => "retry from the start",
            other => other.as_str(),
        }
    }
}

/// Why `action` does not apply in status `from`, beyond the status itself, for a conflict's
/// message (empty when the status says it all).
pub(crate) const fn why_not(action: Control, from: RequestStatus) -> &'static str {
    match (action.is_retry(), from) {
        (true, RequestStatus::Completed) => {
            " (a completed request is not retried: submit its input again under a new id)"
        }
        (true, _) => " (only a failed or stopped request is retried: it has not ended)",
        (false, _) => "",
    }
}

/// The control table: the status a request moves to when `action` is applied in status
/// `from`, or `None` when the action does not apply (it is a conflict: pausing a finished
/// request, resuming a running one, retrying one that has not ended or that completed).
pub(crate) const fn control(from: RequestStatus, action: Control) -> Option<RequestStatus> {
    use RequestStatus::{Completed, Failed, Paused, Queued, Running, Stopped};
    match (action, from) {
        (Control::Pause, Queued | Running) => Some(Paused),
        (Control::Resume, Paused) => Some(Running),
        (Control::Stop, Queued | Running | Paused) => Some(Stopped),
        (Control::Retry | Control::RetryFromStart, Failed | Stopped) => Some(Running),
        (Control::Pause | Control::Resume | Control::Stop, Completed | Failed | Stopped)
        | (Control::Pause, Paused)
        | (Control::Resume, Queued | Running)
        | (Control::Retry | Control::RetryFromStart, Queued | Running | Paused | Completed) => None,
    }
}

/// What the start of a vertex's attempt makes of its request's status: a queued request is
/// running from its first attempt on; any other status stays.
pub(crate) const fn on_start(request: RequestStatus) -> RequestStatus {
    match request {
        RequestStatus::Queued => RequestStatus::Running,
        other => other,
    }
}

/// The status of an instance that has just become ready (all its inputs arrived) in a request
/// with status `request`: parked while the request is paused, else queued.
pub(crate) const fn on_ready(request: RequestStatus) -> VertexStatus {
    match request {
        RequestStatus::Paused => VertexStatus::Parked,
        _ => VertexStatus::Queued,
    }
}

/// What the sweep makes of an instance when its request ends: one that had been made ready
/// (queued, parked, retrying, running) is `cancelled`; one still waiting for its inputs is
/// `skipped`; a settled one stays as it is.
pub(crate) const fn sweep(vertex: VertexStatus) -> VertexStatus {
    match vertex {
        VertexStatus::Pending => VertexStatus::Skipped,
        VertexStatus::Queued
        | VertexStatus::Parked
        | VertexStatus::Retrying
        | VertexStatus::Running => VertexStatus::Cancelled,
        settled => settled,
    }
}

/// What the end of its request makes of an instance whose engine knows it will not go on (its
/// attempt was cancelled, or its entry dropped): one that was queued, retrying or running is
/// `cancelled`; any other stays as it is, so that a retry can tell what had been made ready
/// (`parked` stays parked) from what still waited for its inputs (`pending` stays pending).
pub(crate) const fn on_end(vertex: VertexStatus) -> VertexStatus {
    match vertex {
        VertexStatus::Queued | VertexStatus::Retrying | VertexStatus::Running => {
            VertexStatus::Cancelled
        }
        other => other,
    }
}

/// Whether a retry queues the instance again: one that `failed`, was `cancelled`, or was
/// `parked` when its request ended had all its inputs and holds no entry any more. (On Redis,
/// one still `queued`, `retrying` or `running` at the retry has its entry or its attempt still
/// under way, and goes on by itself.)
pub(crate) const fn reruns(vertex: VertexStatus) -> bool {
    matches!(
        vertex,
        VertexStatus::Failed | VertexStatus::Cancelled | VertexStatus::Parked
    )
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Attempt again after this backoff.
    After(Duration),
    /// The instance has failed for good, and with it the request.
    GiveUp,
}

/// The retry policy: after the `failures`-th recorded failure of an instance (this one
/// included; deliveries lost with their worker are not failures), whether it is attempted
/// again, and after which backoff. A failure that no retry can fix (a permanent error, a
/// payload that does not decode) gives up at once; others retry while the node's attempts
/// last, with [`NodeOptions::backoff_before`].
pub(crate) fn retry(options: &NodeOptions, failure: &Failure, failures: u32) -> Retry {
    if failure.is_retryable() && failures < options.max_attempts() {
        Retry::After(options.backoff_before(failures.saturating_add(1)))
    } else {
        Retry::GiveUp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_parses_back() {
        for status in RequestStatus::ALL {
            assert_eq!(status.as_str().parse::<RequestStatus>(), Ok(*status));
            let json = serde_json::to_string(status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        for status in VertexStatus::ALL {
            assert_eq!(status.as_str().parse::<VertexStatus>(), Ok(*status));
        }
        for action in Control::ALL {
            assert_eq!(action.as_str().parse::<Control>(), Ok(*action));
        }
        let error = "runing".parse::<RequestStatus>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "`runing` is not a RequestStatus; the words are those of its `as_str`"
        );
    }

    #[test]
    fn the_control_table() {
        use RequestStatus::*;
        let table = [
            (
                Control::Pause,
                [Some(Paused), Some(Paused), None, None, None, None],
            ),
            (
                Control::Resume,
                [None, None, Some(Running), None, None, None],
            ),
            (
                Control::Stop,
                [
                    Some(Stopped),
                    Some(Stopped),
                    Some(Stopped),
                    None,
                    None,
                    None,
                ],
            ),
            (
                Control::Retry,
                [None, None, None, None, Some(Running), Some(Running)],
            ),
            (
                Control::RetryFromStart,
                [None, None, None, None, Some(Running), Some(Running)],
            ),
        ];
        for (action, row) in table {
            for (from, to) in RequestStatus::ALL.iter().zip(row) {
                assert_eq!(control(*from, action), to, "{action} from {from}");
            }
        }
        // Only a retry moves a request out of a final status (never out of `completed`), and
        // a final status is reached only by stop.
        for from in RequestStatus::ALL {
            for action in Control::ALL {
                if let Some(to) = control(*from, *action) {
                    assert_eq!(from.is_final(), action.is_retry());
                    assert_ne!(*from, Completed);
                    assert_eq!(to.is_final(), *action == Control::Stop);
                }
            }
        }
    }

    #[test]
    fn the_sweep_leaves_every_instance_settled() {
        for status in VertexStatus::ALL {
            let swept = sweep(*status);
            assert!(swept.is_final(), "{status} swept to {swept}");
            if status.is_final() {
                assert_eq!(swept, *status);
            }
        }
        assert_eq!(sweep(VertexStatus::Pending), VertexStatus::Skipped);
        assert_eq!(sweep(VertexStatus::Retrying), VertexStatus::Cancelled);
    }

    #[test]
    fn a_retry_reruns_what_had_its_inputs() {
        for status in VertexStatus::ALL {
            let ended = on_end(*status);
            // What the end leaves is either settled or waiting: nothing is shown running.
            assert!(
                ended.is_final() || matches!(ended, VertexStatus::Pending | VertexStatus::Parked),
                "{status} ended as {ended}"
            );
            assert_eq!(
                reruns(ended),
                !matches!(
                    *status,
                    VertexStatus::Pending | VertexStatus::Done | VertexStatus::Skipped
                ),
                "{status}"
            );
        }
    }

    #[test]
    fn ready_and_start() {
        assert_eq!(on_ready(RequestStatus::Paused), VertexStatus::Parked);
        assert_eq!(on_ready(RequestStatus::Running), VertexStatus::Queued);
        assert_eq!(on_start(RequestStatus::Queued), RequestStatus::Running);
        assert_eq!(on_start(RequestStatus::Paused), RequestStatus::Paused);
    }

    #[test]
    fn retries_last_while_the_node_allows() {
        let options = NodeOptions {
            retries: 2,
            ..NodeOptions::DEFAULT
        };
        let flaky = Failure::Error("flaky".into());
        assert!(matches!(retry(&options, &flaky, 1), Retry::After(_)));
        assert!(matches!(retry(&options, &flaky, 2), Retry::After(_)));
        assert_eq!(retry(&options, &flaky, 3), Retry::GiveUp);
        let permanent = Failure::Permanent("bad input".into());
        assert_eq!(retry(&options, &permanent, 1), Retry::GiveUp);
        assert_eq!(
            retry(&NodeOptions::DEFAULT, &flaky, 1),
            Retry::GiveUp,
            "no retries by default"
        );
    }
}
