//! Redis out of memory (`maxmemory` reached, with the `noeviction` policy): what a worker does
//! while its writes are refused.
//!
//! At `maxmemory` Redis still answers reads, and the commands that do not grow memory: a
//! worker's `XREADGROUP` still delivers entries, `XCLAIM` still renews their leases,
//! `XAUTOCLAIM` still reclaims a dead worker's. Only the scripts that record what happens
//! (start, complete, fail...) are refused, with an `OOM` error. Left at that, every entry read
//! would stay pending for its lease and then be reclaimed a batch at a time: a short spell
//! pulled the whole backlog into the pending list, which then drained at the reclaimer's pace,
//! minutes after memory had returned, and completions refused meanwhile ran their vertex again.
//!
//! So a worker keeps what it holds and tries again, and reads no more meanwhile:
//! - A script refused with `OOM` is tried again by the task that called it, with a backoff
//!   ([`Backoff`], up to half a second), while the worker holds the entries it is about
//!   (their leases renewed with the running ones', so that nobody reclaims them). Retrying is
//!   safe: Redis refuses a script at the first command that would grow memory, and only if it
//!   has written nothing before, so a refused script changed nothing. A completion refused
//!   this way is recorded when memory returns, and its vertex does not run again.
//! - Giving the entries back instead would gain nothing: Redis has no command that returns a
//!   pending entry to its group, a reclaimed one would be refused alike on any other worker,
//!   and the reclaimer moves only a batch per half lease. Keeping them costs at most what one
//!   worker holds: its intake and its slots, as many entries as twice its concurrency, since a
//!   read waits for room in the intake, and entries whose start is refused keep their place.
//! - When memory returns, each waiting script succeeds at its next try, within the backoff,
//!   and the worker goes on at full speed: nothing waits for a lease.
//! - The promoter backs off alike; the start of a worker waits for memory to create its
//!   consumer groups, unless they exist (`XGROUP CREATE` is refused at `maxmemory` even for a
//!   group that exists).
//! - The worker logs a warning when a spell begins (and every [`REMIND_EVERY`] while it
//!   lasts), and when it ends.
//!
//! None of this costs anything while Redis accepts writes: a script that succeeds at once is
//! one call, as before.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use fred::prelude::Value;
use fred::types::scripts::Script;

use super::{Delivery, Worker};
use crate::codec::Codec;
use crate::redis::scripts;
use crate::redis::RedisError;
use crate::sync::lock;

/// Whether Redis refused a command (or a script) because it is out of memory.
pub(super) fn is_oom(error: &fred::error::Error) -> bool {
    error.details().starts_with("OOM")
}

/// How often a worker says again that Redis is still out of memory.
pub(super) const REMIND_EVERY: Duration = Duration::from_secs(30);

/// Waits between tries against a server that refuses writes: doubling from 25 ms up to half a
/// second, each less a random part of up to half, so that the tries of many tasks spread out.
#[derive(Debug)]
pub(super) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(25);
    const MOST: Duration = Duration::from_millis(500);

    pub(super) fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// The next wait.
    pub(super) fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (wait * 2).min(Self::MOST);
        wait.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

/// Whether a spell of refused writes is going on, for the worker's log: one warning when it
/// begins (and a reminder now and then), one line when it ends.
#[derive(Debug, Default)]
pub(super) struct Memory {
    spell: Mutex<Option<Spell>>,
}

#[derive(Debug)]
struct Spell {
    since: Instant,
    reminded: Instant,
}

impl Memory {
    /// Redis refused a write of this worker for want of memory (`what` it was for).
    pub(super) fn refused(&self, consumer: &str, what: &str, error: &fred::error::Error) {
        let mut spell = lock(&self.spell);
        let now = Instant::now();
        match spell.as_mut() {
            None => {
                *spell = Some(Spell {
                    since: now,
                    reminded: now,
                });
                tracing::warn!(
                    consumer,
                    refused = what,
                    error = %error,
                    "Redis is out of memory (maxmemory): this worker keeps the entries it holds, \
                     renewing their leases, reads no more, and tries its writes again with \
                     backoff until memory returns"
                );
            }
            Some(spell) if now.duration_since(spell.reminded) >= REMIND_EVERY => {
                spell.reminded = now;
                tracing::warn!(
                    consumer,
                    refused = what,
                    for_s = now.duration_since(spell.since).as_secs(),
                    "Redis is still out of memory (maxmemory); waiting for memory"
                );
            }
            Some(_) => {}
        }
    }

    /// Redis accepted a write after refusing some: the spell, if one was going on, is over.
    pub(super) fn accepted(&self, consumer: &str) {
        if let Some(spell) = lock(&self.spell).take() {
            tracing::info!(
                consumer,
                after_ms = spell.since.elapsed().as_millis() as u64,
                "Redis accepts writes again; going on"
            );
        }
    }
}

/// What a script refused for want of memory does when the worker is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnShutdown {
    /// Gives up: the entries stay pending, and are reclaimed after their lease (a start:
    /// nothing has run yet).
    GiveUp,
    /// Keeps trying (the record of an attempt that ran: giving up would run it again
    /// elsewhere).
    KeepTrying,
}

impl<C: Codec> Worker<C> {
    /// Runs `script` with the keys and arguments `build` makes (see [`scripts::call`]); while
    /// Redis refuses it for want of memory, holds `holding` (their leases renewed) and tries
    /// again with backoff (see the module docs). `what` names the write for the log.
    pub(super) async fn script(
        &self,
        script: &Script,
        what: &str,
        holding: &[&Delivery],
        on_shutdown: OnShutdown,
        build: impl Fn() -> (Vec<String>, Vec<Value>),
    ) -> Result<Value, RedisError> {
        let client = &self.engine.inner.client;
        let mut error = match scripts::call(script, client, &build).await {
            Err(error) if is_oom(&error) => error,
            result => return Ok(result?),
        };
        let _held: Vec<_> = holding.iter().map(|delivery| self.hold(delivery)).collect();
        let mut backoff = Backoff::new();
        loop {
            self.memory.refused(&self.consumer, what, &error);
            let wait = backoff.next();
            match on_shutdown {
                OnShutdown::GiveUp => tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = self.stopping.cancelled() => return Err(error.into()),
                },
                OnShutdown::KeepTrying => tokio::time::sleep(wait).await,
            }
            match scripts::call(script, client, &build).await {
                Err(refused) if is_oom(&refused) => error = refused,
                result => {
                    self.memory.accepted(&self.consumer);
                    return Ok(result?);
                }
            }
        }
    }
}
