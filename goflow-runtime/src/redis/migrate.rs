//! Moving a request to this engine's version of its workflow's graph: which vertices carry
//! over, and which completions would leave a vertex of the new graph unfed, is worked out here
//! from the two versions' layouts ([`Migration`]); `migrate.lua` checks the request's state
//! against both and renumbers it, in one step.

use fred::prelude::{HashesInterface, Value};

use super::protocol::{GROUP, REQ_HASH, REQ_STATUS};
use super::scripts::{self, MIGRATE};
use super::{Flow, RedisEngine, RedisError};
use crate::codec::Codec;
use crate::error::{Error, Refusal};
use crate::lifecycle::RequestStatus;
use crate::plan::{Instance, Migration};
use crate::request::Migrated;
use crate::request_id::RequestId;
use crate::time::now_ms;

/// How many times a migration reads the request again when its version changed under it (a
/// retry from the start, or another migration, in between).
const MOST_READS: usize = 3;

impl<C: Codec> RedisEngine<C> {
    /// Moves request `id` of `flow` to this engine's version, if its progress carries over
    /// (see [`Engine::migrate`](crate::Engine::migrate)).
    pub(super) async fn migrate(&self, flow: &Flow, id: &RequestId) -> Result<Migrated, Error> {
        let name = flow.plan.flow();
        let fail = |e: RedisError| e.into_error(name);
        let missing = || Error::UnknownRequest {
            flow: name,
            request_id: id.clone(),
        };
        for _ in 0..MOST_READS {
            let (status, from): (Option<String>, Option<String>) = self
                .inner
                .client
                .hmget(flow.keys.request(id), vec![REQ_STATUS, REQ_HASH])
                .await
                .map_err(|e| fail(e.into()))?;
            let status: RequestStatus = status.ok_or_else(missing)?.parse().map_err(
                |e: crate::lifecycle::UnknownWord| fail(RedisError::Protocol(e.to_string())),
            )?;
            let from = from.unwrap_or_default();
            let migrated = |moved: bool, status: RequestStatus, queued: u32| Migrated {
                request_id: id.clone(),
                from: from.clone(),
                to: flow.hash.clone(),
                moved,
                status,
                queued,
            };
            if from == flow.hash {
                return Ok(migrated(false, status, 0));
            }
            let refuse = |refusal: Refusal| Error::NotMigrated {
                flow: name,
                request_id: id.clone(),
                from: from.clone(),
                to: flow.hash.clone(),
                refusal: Box::new(refusal),
            };
            let old = self.stored_layout(flow, &from).await.map_err(fail)?;
            let Some((old, migration)) = old.and_then(|old| {
                let migration = Migration::between(&old, &flow.layout)?;
                Some((old, migration))
            }) else {
                return Err(refuse(Refusal::UnknownGraph));
            };
            let alive = self.version_alive(flow, &from).await.map_err(fail)?;
            let carried: Vec<String> = migration
                .carried()
                .flat_map(|(o, n)| [o.to_string(), n.to_string()])
                .collect();
            let guarded: Vec<String> = migration
                .must_not_have_completed()
                .iter()
                .map(ToString::to_string)
                .collect();
            let (carried, guarded) = (carried.join(" "), guarded.join(" "));
            let reply = scripts::call(
                MIGRATE.get(self.inner.config.events),
                &self.inner.client,
                || {
                    let keys = vec![
                        flow.keys.request(id),
                        flow.keys.of(id).ready.clone(),
                        flow.keys.parked(id),
                        flow.keys.of(id).delayed.clone(),
                        flow.keys.of(id).ready_of(&from),
                    ];
                    let args = vec![
                        Value::from(id.as_str()),
                        Value::from(now_ms().to_string()),
                        Value::from(flow.hash.as_str()),
                        Value::from(from.as_str()),
                        Value::from(if alive { "1" } else { "0" }),
                        Value::from(carried.as_str()),
                        Value::from(guarded.as_str()),
                        Value::from(GROUP),
                    ];
                    (keys, args)
                },
            )
            .await
            .map_err(|e| fail(e.into()))?
            .into_array();
            let word = |i: usize| {
                reply
                    .get(i)
                    .and_then(|v| v.as_str().map(|s| s.to_string()))
                    .unwrap_or_default()
            };
            let vertices = |i: usize| -> Vec<usize> {
                word(i)
                    .split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            };
            match word(0).as_str() {
                "ok" => {
                    let status = word(1).parse().unwrap_or(status);
                    let queued = reply.get(2).and_then(Value::as_u64).unwrap_or(0);
                    tracing::info!(flow = name, request = %id, from, to = flow.hash, queued, "a request migrated");
                    return Ok(migrated(true, status, queued as u32));
                }
                "changed" => continue,
                "missing" => return Err(missing()),
                "ended" => return Err(refuse(Refusal::Completed)),
                "busy" => {
                    let key = word(1);
                    let vertex = Instance::parse_key(&key)
                        .filter(|i| i.vertex() < old.len())
                        .map_or(key, |i| old.name_of(&i).to_string());
                    return Err(refuse(Refusal::Running { vertex }));
                }
                "incompatible" => {
                    let Some(why) = migration.incompatible(&vertices(1), &vertices(2)) else {
                        break;
                    };
                    return Err(refuse(Refusal::Incompatible {
                        vertex: why.vertex,
                        reason: why.reason,
                    }));
                }
                _ => break,
            }
        }
        Err(fail(RedisError::Protocol(format!(
            "the migration of request `{id}` could not settle: its version kept changing, or \
             the script answered what this engine does not understand"
        ))))
    }
}
