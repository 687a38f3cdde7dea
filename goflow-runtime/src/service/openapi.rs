//! `GET /openapi.json`: an OpenAPI 3.1 document of every route, with each registered
//! workflow's own `POST /flow/{name}` whose request body is the workflow's input and whose
//! answer carries its output, both as JSON Schema (from `schemars::JsonSchema` on the payload
//! types; a type without it is described as any JSON, with a note saying so).

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::registry::FlowDef;

/// The note on a payload whose type has no schema.
const NO_SCHEMA: &str =
    "the type does not implement `schemars::JsonSchema`: derive it for a schema here";

/// A workflow's input and output schemas, `{}` (any JSON) with a note where there is none.
pub(super) fn schemas(flow: &FlowDef) -> (Value, Value) {
    let (input, output) = (flow.schemas)();
    let or_any =
        |schema: Option<Value>| schema.unwrap_or_else(|| json!({ "description": NO_SCHEMA }));
    (or_any(input), or_any(output))
}

/// A JSON answer described by the schema `reference` in the document's components.
fn answer(description: &str, reference: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{reference}")}}}
    })
}

/// An error answer.
fn error(description: &str) -> Value {
    answer(description, "Error")
}

fn parameter(name: &str, place: &str, schema: &Value, description: &str) -> Value {
    json!({
        "name": name,
        "in": place,
        "required": place == "path",
        "schema": schema,
        "description": description,
    })
}

/// The document.
pub(super) fn document(flows: &HashMap<&'static str, FlowDef>) -> Value {
    let mut names: Vec<&&'static str> = flows.keys().collect();
    names.sort();
    let name_param = parameter(
        "name",
        "path",
        &json!({"type": "string", "enum": names}),
        "the workflow",
    );
    let id_param = parameter(
        "id",
        "path",
        &json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}),
        "the request",
    );
    let wait_param = parameter(
        "wait",
        "query",
        &json!({"type": "number", "minimum": 0}),
        "seconds to wait for the request to end (capped by the service's max wait)",
    );
    let limit_param = parameter(
        "limit",
        "query",
        &json!({"type": "integer", "minimum": 1, "maximum": 500}),
        "the most on one page (default 50)",
    );
    let cursor_param = parameter(
        "cursor",
        "query",
        &json!({"type": "string"}),
        "the `next_cursor` of the page before",
    );
    let unauthorized =
        error("`Authorization: Bearer <token>` is missing or wrong (when the service has a token)");
    let mut paths = Map::new();
    for name in &names {
        let flow = &flows[**name];
        let (input, output) = schemas(flow);
        let state = json!({
            "allOf": [{"$ref": "#/components/schemas/RequestState"}],
            "properties": {"output": output},
        });
        paths.insert(
            format!("/flow/{name}"),
            json!({
                "post": {
                    "summary": format!("Submit a request of `{name}`"),
                    "description": flow.description,
                    "operationId": format!("submit_{name}"),
                    "parameters": [
                        wait_param,
                        parameter("X-Request-Id", "header", &json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}), "names the request: the same id never starts a second run"),
                    ],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": input}}},
                    "responses": {
                        "200": {"description": "it ended within the wait, or was submitted before with this input", "content": {"application/json": {"schema": state}}},
                        "202": answer("accepted", "Submitted"),
                        "400": error("the body is not a valid input, or a header or `wait` is invalid"),
                        "401": unauthorized,
                        "409": error("a request with this id exists with another input"),
                        "413": error("the body is too large"),
                        "503": error("the engine's storage did not answer: retry with the same X-Request-Id"),
                    },
                },
                "get": {
                    "summary": format!("Describe `{name}`: its graph and its input and output schemas"),
                    "operationId": format!("describe_{name}"),
                    "responses": {"200": answer("the workflow", "Flow"), "401": unauthorized},
                },
            }),
        );
    }
    let flow_route = |summary: &str, id: &str, params: Vec<Value>, responses: Value| json!({"get": {"summary": summary, "operationId": id, "parameters": params, "responses": responses}});
    paths.insert(
        "/flow/{name}/requests".into(),
        flow_route(
            "List the workflow's requests, newest first",
            "list_requests",
            vec![
                name_param.clone(),
                parameter("status", "query", &json!({"type": "string"}), "comma-separated statuses: queued, running, paused, completed, failed, stopped"),
                parameter("since", "query", &json!({"type": "integer", "minimum": 0}), "created at or after (ms since the epoch)"),
                parameter("until", "query", &json!({"type": "integer", "minimum": 0}), "created before (ms since the epoch)"),
                limit_param.clone(),
                cursor_param.clone(),
            ],
            json!({"200": answer("a page", "RequestPage"), "400": error("a filter is invalid"), "401": unauthorized, "404": error("no such workflow")}),
        ),
    );
    paths.insert(
        "/flow/{name}/requests/counts".into(),
        flow_route(
            "Count the workflow's requests in each status",
            "count_requests",
            vec![
                name_param.clone(),
                parameter("since", "query", &json!({"type": "integer", "minimum": 0}), "only those created at or after (ms since the epoch)"),
            ],
            json!({"200": answer("the counts", "StatusCounts"), "400": error("a filter is invalid"), "401": unauthorized, "404": error("no such workflow")}),
        ),
    );
    paths.insert(
        "/flow/{name}/dead".into(),
        flow_route(
            "List the workflow's dead letters, newest first",
            "list_dead_letters",
            vec![name_param.clone(), limit_param, cursor_param],
            json!({"200": answer("a page", "DeadLetterPage"), "400": error("a filter is invalid"), "401": unauthorized, "404": error("no such workflow")}),
        ),
    );
    paths.insert(
        "/flow/{name}/requests/{id}".into(),
        flow_route(
            "Read a request's state; with `wait`, once it has ended",
            "request_state",
            vec![
                name_param.clone(),
                id_param.clone(),
                wait_param,
                parameter("vertices_from", "query", &json!({"type": "integer", "minimum": 0}), "the first vertex instance listed"),
                parameter("vertices_limit", "query", &json!({"type": "integer", "minimum": 1, "maximum": 1000}), "the most instances listed"),
            ],
            json!({"200": answer("its state", "RequestState"), "400": error("an invalid id, wait or page"), "401": unauthorized, "404": error("no such workflow or request")}),
        ),
    );
    paths.insert(
        "/flow/{name}/requests/{id}/data".into(),
        flow_route(
            "Read a request's input and each vertex instance's output, as JSON",
            "request_data",
            vec![name_param.clone(), id_param.clone()],
            json!({"200": answer("its data", "RequestData"), "400": error("an invalid id"), "401": unauthorized, "404": error("no such workflow or request")}),
        ),
    );
    paths.insert(
        "/flow/{name}/workers".into(),
        flow_route(
            "List the workers of the workflow and how far behind its work is",
            "list_workers",
            vec![name_param.clone()],
            json!({"200": answer("its workers", "Workers"), "401": unauthorized, "404": error("no such workflow")}),
        ),
    );
    paths.insert(
        "/flow/{name}/versions".into(),
        flow_route(
            "List the versions of the workflow's graph: requests under way and workers of each",
            "list_versions",
            vec![name_param.clone()],
            json!({"200": answer("its versions", "Versions"), "401": unauthorized, "404": error("no such workflow")}),
        ),
    );
    paths.insert(
        "/flow/{name}/versions/{version}".into(),
        json!({"delete": {
            "summary": "Forget a drained version of the workflow's graph",
            "operationId": "forget_version",
            "parameters": [name_param, parameter("version", "path", &json!({"type": "string", "pattern": "^[0-9a-fA-F]{16}$"}), "the version: the graph's structural hash")],
            "responses": {"204": {"description": "forgotten"}, "400": error("not a version"), "401": unauthorized, "404": error("no such workflow"), "409": error("the version is this service's, or has requests under way or live workers")},
        }}),
    );
    let action_param = parameter(
        "action",
        "path",
        &json!({"type": "string", "enum": ["pause", "resume", "stop", "retry"]}),
        "what to do: `retry` runs a failed or stopped request on from what failed or did not run",
    );
    let from_param = parameter(
        "from",
        "query",
        &json!({"type": "string", "enum": ["failed", "start"]}),
        "for `retry`: `start` runs everything again from the input (default `failed`)",
    );
    paths.insert(
        "/flow/{name}/requests/{id}/{action}".into(),
        json!({"post": {
            "summary": "Pause, resume, stop or retry a request",
            "operationId": "control_request",
            "parameters": [name_param, id_param, action_param, from_param],
            "responses": {"202": answer("its new status", "Controlled"), "400": error("an invalid id or `from`"), "401": unauthorized, "404": error("no such workflow, request or action"), "409": error("the action does not apply to its status (a retry, to a request that has not ended or that completed)")},
        }}),
    );
    paths.insert(
        "/flow/{name}/requests/{id}/migrate".into(),
        json!({"post": {
            "summary": "Move a request to this service's version of the graph, if its progress carries over",
            "operationId": "migrate_request",
            "parameters": [name_param, id_param],
            "responses": {"200": answer("what it did", "Migrated"), "400": error("an invalid id"), "401": unauthorized, "404": error("no such workflow or request"), "409": error("its progress does not carry over (`version_incompatible`, naming the vertex in `error.vertex`), an attempt runs on a live worker of its version or it completed (`conflict`), or its version's graph is not known (`version_unknown`)")},
        }}),
    );
    let bulk_action_param = parameter(
        "action",
        "path",
        &json!({"type": "string", "enum": ["pause", "resume", "stop", "retry", "migrate"]}),
        "what to do to each request: as its own action would, or `migrate` as `POST …/requests/{id}/migrate`",
    );
    paths.insert(
        "/flow/{name}/requests/actions/{action}".into(),
        json!({"post": {
            "summary": "Pause, resume, stop, retry or migrate the requests a selection picks, at most 1,000",
            "operationId": "control_requests",
            "parameters": [name_param, bulk_action_param, from_param],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Selection"}}}},
            "responses": {"200": answer("what it did", "BulkOutcome"), "400": error("an invalid selection or `from`"), "401": unauthorized, "404": error("no such workflow or action")},
        }}),
    );
    let last_event_id = parameter(
        "Last-Event-ID",
        "header",
        &json!({"type": "string", "pattern": "^[0-9]+-[0-9]+-[0-9]+$"}),
        "resume after this event (the `id` of an event received)",
    );
    // Each event of the stream (as Schemathesis reads SSE: one object per event): `event`
    // names what moved, `id` is where to resume, `data` the event as JSON.
    let sse = |what: &str| {
        json!({"description": what, "content": {"text/event-stream": {"schema": {
            "type": "object",
            "required": ["data"],
            "properties": {
                "event": {"type": "string", "enum": ["vertex", "request", "error"]},
                "id": {"type": "string", "pattern": "^[0-9]+-[0-9]+-[0-9]+$"},
                "data": {"type": "string", "contentMediaType": "application/json"},
            },
        }}}})
    };
    paths.insert(
        "/flow/{name}/requests/{id}/events".into(),
        json!({"get": {
            "summary": "Follow a request's events (Server-Sent Events) until it ends",
            "operationId": "request_events",
            "parameters": [name_param, id_param, last_event_id],
            "responses": {"200": sse("how the request stands, then each vertex transition and status change; closes after its end"), "400": error("an invalid id or Last-Event-ID"), "401": unauthorized, "404": error("no such workflow or request")},
        }}),
    );
    paths.insert(
        "/flow/{name}/events".into(),
        json!({"get": {
            "summary": "Follow the events of every request of the workflow (Server-Sent Events)",
            "operationId": "flow_events",
            "parameters": [name_param, last_event_id],
            "responses": {"200": sse("each vertex transition and status change of its requests, from now on (or after Last-Event-ID); never closes by itself"), "400": error("an invalid Last-Event-ID"), "401": unauthorized, "404": error("no such workflow")},
        }}),
    );
    let plain = |summary: &str, id: &str, reference: &str| json!({"get": {"summary": summary, "operationId": id, "responses": {"200": answer(summary, reference), "401": unauthorized}}});
    paths.insert(
        "/flows".into(),
        plain("The registered workflows", "list_flows", "Flows"),
    );
    paths.insert("/".into(), plain("What this service is", "index", "Any"));
    paths.insert(
        "/healthz".into(),
        json!({"get": {"summary": "Liveness", "operationId": "healthz", "security": [], "responses": {"200": answer("alive", "Any")}}}),
    );
    paths.insert(
        "/readyz".into(),
        json!({"get": {"summary": "Readiness", "operationId": "readyz", "security": [], "responses": {"200": answer("ready", "Any"), "503": error("not ready")}}}),
    );
    paths.insert(
        "/openapi.json".into(),
        plain("This document", "openapi", "Any"),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "goflow",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Submit, find, watch and control the requests of the workflows this service runs.",
        },
        "paths": paths,
        "security": [{}, {"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": components(),
        },
    })
}

/// The schemas of the answers every workflow shares.
fn components() -> Value {
    let status = json!({"type": "string", "enum": ["queued", "running", "paused", "completed", "failed", "stopped"]});
    let millis = json!({"type": "integer", "minimum": 0});
    let maybe_millis = json!({"type": ["integer", "null"], "minimum": 0});
    let failure = json!({
        "type": "object",
        "required": ["vertex", "attempts", "failure"],
        "properties": {
            "vertex": {"type": "string"},
            "attempts": {"type": "integer", "minimum": 0},
            "failure": {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}, "detail": {}}},
        },
    });
    json!({
        "Any": {},
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "vertex": {"type": "string"}}},
                "request_id": {"type": "string"},
            },
        },
        "Submitted": {
            "type": "object",
            "required": ["request_id", "status", "created"],
            "properties": {"request_id": {"type": "string"}, "status": status, "created": {"type": "boolean"}},
        },
        "Controlled": {
            "type": "object",
            "required": ["request_id", "status"],
            "properties": {"request_id": {"type": "string"}, "status": status},
        },
        "RequestFailure": failure,
        "RequestState": {
            "type": "object",
            "required": ["flow", "request_id", "status", "created_at_ms", "updated_at_ms", "vertices", "retries"],
            "properties": {
                "flow": {"type": "string"},
                "request_id": {"type": "string"},
                "status": status,
                "created_at_ms": millis,
                "updated_at_ms": millis,
                "finished_at_ms": maybe_millis,
                "vertices": {"type": "array", "items": {
                    "type": "object",
                    "required": ["vertex", "status", "attempts"],
                    "properties": {
                        "vertex": {"type": "string"},
                        "status": {"type": "string", "enum": ["pending", "queued", "parked", "running", "retrying", "done", "failed", "cancelled", "skipped"]},
                        "attempts": {"type": "integer", "minimum": 0},
                        "started_at_ms": maybe_millis,
                        "finished_at_ms": maybe_millis,
                        "worker": {"type": ["string", "null"]},
                        "last_failure": {},
                    },
                }},
                "vertices_total": {"type": "integer", "minimum": 0},
                "vertices_next": {"type": "integer", "minimum": 0},
                "failure": {"oneOf": [{"$ref": "#/components/schemas/RequestFailure"}, {"type": "null"}]},
                "retries": {"type": "integer", "minimum": 0},
                "trace_id": {"type": ["string", "null"]},
                "version": {"type": "string"},
                "waiting_for": {"type": ["string", "null"]},
                "output": {},
                "output_error": {"type": "string"},
                "created": {"type": "boolean"},
            },
        },
        "RequestPage": {
            "type": "object",
            "required": ["requests", "next_cursor"],
            "properties": {
                "requests": {"type": "array", "items": {
                    "type": "object",
                    "required": ["request_id", "status", "created_at_ms", "ended_at_ms", "version"],
                    "properties": {
                        "request_id": {"type": "string"},
                        "status": status,
                        "created_at_ms": millis,
                        "ended_at_ms": maybe_millis,
                        "failure": {"$ref": "#/components/schemas/RequestFailure"},
                        "version": {"type": "string"},
                    },
                }},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
        "StatusCounts": {
            "type": "object",
            "required": ["queued", "running", "paused", "completed", "failed", "stopped"],
            "additionalProperties": {"type": "integer", "minimum": 0},
        },
        "DeadLetterPage": {
            "type": "object",
            "required": ["dead", "next_cursor"],
            "properties": {
                "dead": {"type": "array", "items": {
                    "type": "object",
                    "required": ["id", "at_ms", "request_id", "failure"],
                    "properties": {
                        "id": {"type": "string"},
                        "at_ms": millis,
                        "request_id": {"type": "string"},
                        "failure": {"$ref": "#/components/schemas/RequestFailure"},
                    },
                }},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
        "Selection": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": false,
            "properties": {
                "status": {"type": "array", "items": status},
                "since": millis,
                "until": millis,
                "ids": {"type": "array", "maxItems": 1000, "items": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}},
            },
        },
        "BulkOutcome": {
            "type": "object",
            "required": ["matched", "applied", "skipped", "more"],
            "properties": {
                "matched": {"type": "integer", "minimum": 0},
                "applied": {"type": "integer", "minimum": 0},
                "skipped": {"type": "array", "items": {"type": "object", "required": ["request_id", "reason"], "properties": {"request_id": {"type": "string"}, "reason": {"type": "string"}}}},
                "more": {"type": "boolean"},
            },
        },
        "Migrated": {
            "type": "object",
            "required": ["request_id", "from", "to", "moved", "status", "queued"],
            "properties": {
                "request_id": {"type": "string"},
                "from": {"type": "string"},
                "to": {"type": "string"},
                "moved": {"type": "boolean"},
                "status": status,
                "queued": {"type": "integer", "minimum": 0},
            },
        },
        "RequestData": {
            "type": "object",
            "required": ["request_id", "input", "outputs"],
            "properties": {
                "request_id": {"type": "string"},
                "input": {},
                "outputs": {"type": "object", "additionalProperties": {}},
                "undecodable": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "Workers": {
            "type": "object",
            "required": ["lag", "workers"],
            "properties": {
                "lag": {"type": ["integer", "null"], "minimum": 0},
                "workers": {"type": "array", "items": {
                    "type": "object",
                    "required": ["name", "in_flight", "idle_ms", "version"],
                    "properties": {
                        "name": {"type": "string"},
                        "in_flight": {"type": "integer", "minimum": 0},
                        "idle_ms": {"type": "integer", "minimum": 0},
                        "version": {"type": "string"},
                    },
                }},
            },
        },
        "Versions": {
            "type": "object",
            "required": ["versions"],
            "properties": {"versions": {"type": "array", "items": {
                "type": "object",
                "required": ["version", "current", "state", "open", "workers", "alive", "graph"],
                "properties": {
                    "version": {"type": "string"},
                    "current": {"type": "boolean"},
                    "state": {"type": "string", "enum": ["current", "draining", "drained"]},
                    "open": {"type": "integer", "minimum": 0},
                    "workers": {"type": "array", "items": {"type": "object"}},
                    "alive": {"type": "boolean"},
                    "graph": {},
                },
            }}},
        },
        "Flows": {
            "type": "object",
            "required": ["engine", "flows"],
            "properties": {"engine": {"type": "string"}, "flows": {"type": "array", "items": {"type": "object"}}},
        },
        "Flow": {
            "type": "object",
            "required": ["name", "description", "version", "graph", "input_schema", "output_schema"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "description": {"type": "string"},
                "graph": {"type": "object"},
                "input_schema": {},
                "output_schema": {},
            },
        },
    })
}
