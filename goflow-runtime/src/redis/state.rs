//! A request's state read from its hash: the fields of `protocol`, turned into the
//! [`RequestState`] both engines report, with the lifecycle's sweep applied once the request
//! has ended (an instance of an ended request that will never run shows as settled, whatever
//! its field still says until a late attempt reports in).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::protocol::{
    INST_ATTEMPTS, INST_FAILURE, INST_FINISHED, INST_OUTPUT, INST_STARTED, INST_STATUS,
    INST_WORKER, REQ_CREATED, REQ_FAILURE, REQ_FINISHED, REQ_HASH, REQ_INPUT, REQ_OUTPUT,
    REQ_RETRIES, REQ_STATUS, REQ_TRACEPARENT, REQ_UPDATED,
};
use crate::lifecycle::{RequestStatus, VertexStatus};
use crate::plan::{Instance, Layout};
use crate::request::{self, RequestData, RequestFailure, RequestState, VertexState};
use crate::request_id::RequestId;

/// The version a request's hash names (`h`), if any.
pub(crate) fn version_of(fields: &HashMap<String, Bytes>) -> Option<&str> {
    fields
        .get(REQ_HASH)
        .and_then(|b| std::str::from_utf8(b).ok())
}

/// How many vertices a request's hash has fields of: at least one more than the highest
/// vertex number of its instances (for [`Layout::unnamed`]).
pub(crate) fn vertices_in(fields: &HashMap<String, Bytes>) -> usize {
    fields
        .keys()
        .filter_map(|k| k.strip_prefix(INST_STATUS))
        .filter_map(Instance::parse_key)
        .map(|i| i.vertex() + 1)
        .max()
        .unwrap_or(0)
}

/// Reads what a request was given and what its instances made from the fields of its Redis
/// hash (`in`, each `o:<instance>`, and `out` for the exit); `None` when there is no status
/// (the request does not exist or has expired). The items a for-each source stored for its
/// body (`o:<instance>#<n>`) are parts of that source's output, not outputs of their own.
pub(crate) fn read_data(
    layout: &Layout,
    mut fields: HashMap<String, Bytes>,
) -> Option<RequestData> {
    fields.get(REQ_STATUS)?;
    let mut outputs: BTreeMap<Instance, Bytes> = BTreeMap::new();
    for (key, value) in &fields {
        let Some(instance) = key
            .strip_prefix(INST_OUTPUT)
            .and_then(Instance::parse_key)
            .filter(|i| i.vertex() < layout.len())
        else {
            continue;
        };
        outputs.insert(instance, value.clone());
    }
    if let Some(output) = fields.get(REQ_OUTPUT) {
        outputs.insert(Instance::root(layout.exit()), output.clone());
    }
    Some(RequestData {
        input: fields.remove(REQ_INPUT),
        outputs: outputs
            .into_iter()
            .map(|(instance, output)| (layout.name_of(&instance).to_string(), output))
            .collect(),
    })
}

/// Reads the state from the fields of its Redis hash; `None` when there is no status (the
/// request does not exist or has expired).
pub(crate) fn read(
    flow: &'static str,
    layout: &Layout,
    request_id: RequestId,
    mut fields: HashMap<String, Bytes>,
) -> Option<RequestState> {
    let text = |fields: &HashMap<String, Bytes>, key: &str| {
        fields
            .get(key)
            .and_then(|b| std::str::from_utf8(b).ok().map(str::to_owned))
    };
    let number = |fields: &HashMap<String, Bytes>, key: &str| {
        text(fields, key).and_then(|t| t.parse::<u64>().ok())
    };
    let status: RequestStatus = text(&fields, REQ_STATUS)?.parse().ok()?;
    // Vertices outside `each` bodies are listed from the start; body instances once they exist
    // (each has a status field from the moment it is enqueued).
    let mut vertices: BTreeMap<Instance, VertexState> = request::initial_vertices(layout);
    for instance in fields
        .keys()
        .filter_map(|k| k.strip_prefix(INST_STATUS))
        .filter_map(Instance::parse_key)
        .filter(|i| i.vertex() < layout.len())
    {
        let name = layout.name_of(&instance).to_string();
        vertices
            .entry(instance)
            .or_insert_with(|| VertexState::pending(name));
    }
    let finished_at_ms = number(&fields, REQ_FINISHED);
    let vertices = vertices
        .into_iter()
        .map(|(instance, mut vertex)| {
            let key = instance.key();
            let field = |prefix: &str| format!("{prefix}{key}");
            vertex.status = text(&fields, &field(INST_STATUS))
                .and_then(|s| s.parse().ok())
                .unwrap_or(VertexStatus::Pending);
            vertex.attempts = number(&fields, &field(INST_ATTEMPTS)).map_or(0, |n| n as u32);
            vertex.started_at_ms = number(&fields, &field(INST_STARTED));
            vertex.finished_at_ms = number(&fields, &field(INST_FINISHED));
            vertex.worker = text(&fields, &field(INST_WORKER));
            vertex.last_failure = fields
                .get(&field(INST_FAILURE))
                .and_then(|b| serde_json::from_slice::<RequestFailure>(b).ok())
                .map(|f| f.failure);
            if status.is_final() {
                vertex.sweep(finished_at_ms.unwrap_or(0));
            }
            vertex
        })
        .collect();
    let failure = fields
        .get(REQ_FAILURE)
        .and_then(|b| serde_json::from_slice::<RequestFailure>(b).ok());
    Some(RequestState {
        flow,
        request_id,
        status,
        created_at_ms: number(&fields, REQ_CREATED).unwrap_or(0),
        updated_at_ms: number(&fields, REQ_UPDATED).unwrap_or(0),
        finished_at_ms,
        vertices,
        failure,
        retries: number(&fields, REQ_RETRIES).map_or(0, |n| n as u32),
        version: text(&fields, REQ_HASH).unwrap_or_default(),
        waiting_for: None,
        trace_id: text(&fields, REQ_TRACEPARENT)
            .and_then(|tp| crate::trace::trace_id(&tp).map(str::to_owned)),
        output: fields.remove(REQ_OUTPUT),
    })
}
