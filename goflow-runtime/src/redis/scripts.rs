//! The Lua scripts, one per atomic state transition, and one function to call any of them.
//!
//! Each script is the Lua prelude ([`protocol::lua_prelude`]: every field name, status word and
//! lifecycle table; less the tables the script never names, see [`protocol::lua_prelude_for`])
//! followed by its files from `lua/`, concatenated. The files spell no field
//! name and no status word themselves (a test below checks it), so the protocol and the
//! lifecycle exist once, in Rust.

use std::sync::LazyLock;

use fred::prelude::{Client, LuaInterface, Value};
use fred::types::scripts::Script;

use super::protocol;

/// The file that appends each step's events to the workflow's events stream.
const EVENTS: &str = include_str!("lua/events.lua");

/// What stands for [`EVENTS`] when the engine's events are off
/// ([`RedisConfig::events`](super::RedisConfig::events)): steps append nothing.
const NO_EVENTS: &str =
    "-- The engine's events are off: steps append none.\nlocal function event() end\n";

/// A script made of the prelude and these files, in order; without its events unless `events`.
fn script(files: &[&str], events: bool) -> Script {
    let mut body = String::new();
    for file in files {
        body.push_str(if !events && *file == EVENTS {
            NO_EVENTS
        } else {
            file
        });
    }
    Script::from_lua(protocol::lua_prelude_for(&body) + &body)
}

/// Declares a script from the files it is made of.
macro_rules! script {
    ($(#[$meta:meta])* $name:ident = $($file:literal),+) => {
        $(#[$meta])*
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| script(&[$(include_str!(concat!("lua/", $file))),+], true));
    };
}

/// A script that appends its step's events (it includes `events.lua`), in its two forms: with
/// the events, and without them (the engine's events off).
pub(crate) struct Eventful {
    with: LazyLock<Script>,
    without: LazyLock<Script>,
}

impl Eventful {
    /// The form for an engine whose events are on (`true`) or off.
    pub(crate) fn get(&self, events: bool) -> &Script {
        if events {
            &self.with
        } else {
            &self.without
        }
    }
}

/// Declares an [`Eventful`] script from the files it is made of (`events.lua` among them).
macro_rules! eventful {
    ($(#[$meta:meta])* $name:ident = $($file:literal),+) => {
        $(#[$meta])*
        pub(crate) static $name: Eventful = Eventful {
            with: LazyLock::new(|| script(&[$(include_str!(concat!("lua/", $file))),+], true)),
            without: LazyLock::new(|| script(&[$(include_str!(concat!("lua/", $file))),+], false)),
        };
    };
}

eventful!(SUBMIT = "index.lua", "events.lua", "submit.lua");
/// The start script takes a batch (the entries of one read): `start.lua` (with the helpers it
/// uses) is the body of a function that `batch.lua` runs once per entry.
pub(crate) static START: Eventful = Eventful {
    with: LazyLock::new(|| batched(&START_FILES, true)),
    without: LazyLock::new(|| batched(&START_FILES, false)),
};
const START_FILES: [&str; 3] = [
    include_str!("lua/entry.lua"),
    include_str!("lua/park.lua"),
    include_str!("lua/start.lua"),
];

/// A script that runs `files` (after the listing indexes and the events) once per item of a
/// batch: they are the body of the function `one` that `batch.lua` calls.
fn batched(files: &[&str], events: bool) -> Script {
    let mut all = vec![
        include_str!("lua/index.lua"),
        EVENTS,
        "local function one(KEYS, ARGV)\n",
    ];
    all.extend(files);
    all.extend(["end\n", include_str!("lua/batch.lua")]);
    script(&all, events)
}
eventful!(
    /// The scripts that end an attempt share their opening, after `entry.lua` (which the start
    /// script shares too).
    COMPLETE = "index.lua",
    "events.lua",
    "entry.lua",
    "attempt_end.lua",
    "complete.lua"
);
eventful!(
    FAIL = "index.lua",
    "events.lua",
    "entry.lua",
    "attempt_end.lua",
    "fail.lua"
);
eventful!(
    ABANDON = "index.lua",
    "events.lua",
    "entry.lua",
    "park.lua",
    "attempt_end.lua",
    "abandon.lua"
);
eventful!(BEGAN = "index.lua", "events.lua", "began.lua");
script!(PROMOTE = "promote.lua");
script!(RETIRE = "retire.lua");
eventful!(
    CONTROL = "index.lua",
    "events.lua",
    "park.lua",
    "by_table.lua",
    "control.lua"
);
eventful!(
    /// Retries an ended request, from where it stopped or from the start.
    RETRY = "index.lua",
    "events.lua",
    "by_table.lua",
    "retry.lua"
);
eventful!(
    /// Moves a request to another version of its workflow's graph.
    MIGRATE = "index.lua",
    "events.lua",
    "park.lua",
    "migrate.lua"
);
script!(
    /// A page of a workflow's requests, from the listing indexes.
    LIST = "index.lua",
    "list.lua"
);
script!(
    /// How many requests of a workflow are in each status, from the listing indexes.
    COUNTS = "index.lua",
    "counts.lua"
);
script!(
    /// Forgets, from the listing indexes, the requests whose hashes have expired.
    FORGET = "index.lua",
    "forget.lua"
);
script!(
    /// How many requests under way each version of a workflow's graph has.
    VERSIONS = "index.lua",
    "versions.lua"
);

/// Runs a script by hash with the keys and arguments `build` makes, loading the script first
/// if the server does not have it (after a restart, or on first use).
///
/// `build` runs again only in that case: a script's arguments are built once per call rather
/// than copied in case the server wants the script (`Script::evalsha_with_reload` copies
/// every argument of every call, which costs the worker an allocation per argument).
pub(crate) async fn call(
    script: &Script,
    client: &Client,
    build: impl Fn() -> (Vec<String>, Vec<Value>),
) -> Result<Value, fred::error::Error> {
    let (keys, args) = build();
    match client.evalsha(script.sha1().clone(), keys, args).await {
        Err(error) if error.details().starts_with("NOSCRIPT") => {
            script.load(client).await?;
            let (keys, args) = build();
            client.evalsha(script.sha1().clone(), keys, args).await
        }
        result => result,
    }
}

#[cfg(test)]
mod tests {
    use crate::lifecycle::{Control, RequestStatus, VertexStatus};
    use crate::redis::protocol::FIELDS;

    const FILES: &[(&str, &str)] = &[
        ("abandon.lua", include_str!("lua/abandon.lua")),
        ("attempt_end.lua", include_str!("lua/attempt_end.lua")),
        ("batch.lua", include_str!("lua/batch.lua")),
        ("began.lua", include_str!("lua/began.lua")),
        ("by_table.lua", include_str!("lua/by_table.lua")),
        ("complete.lua", include_str!("lua/complete.lua")),
        ("control.lua", include_str!("lua/control.lua")),
        ("entry.lua", include_str!("lua/entry.lua")),
        ("events.lua", include_str!("lua/events.lua")),
        ("counts.lua", include_str!("lua/counts.lua")),
        ("fail.lua", include_str!("lua/fail.lua")),
        ("forget.lua", include_str!("lua/forget.lua")),
        ("index.lua", include_str!("lua/index.lua")),
        ("retry.lua", include_str!("lua/retry.lua")),
        ("list.lua", include_str!("lua/list.lua")),
        ("migrate.lua", include_str!("lua/migrate.lua")),
        ("park.lua", include_str!("lua/park.lua")),
        ("promote.lua", include_str!("lua/promote.lua")),
        ("retire.lua", include_str!("lua/retire.lua")),
        ("start.lua", include_str!("lua/start.lua")),
        ("submit.lua", include_str!("lua/submit.lua")),
        ("versions.lua", include_str!("lua/versions.lua")),
    ];

    /// The quoted strings of a Lua source, comments left out.
    fn literals(source: &str) -> Vec<String> {
        let mut found = Vec::new();
        for line in source.lines() {
            let code = line.split("--").next().unwrap_or("");
            let mut rest = code;
            while let Some(open) = rest.find(['\'', '"']) {
                let quote = rest.as_bytes()[open] as char;
                let after = &rest[open + 1..];
                let Some(close) = after.find(quote) else {
                    break;
                };
                found.push(after[..close].to_owned());
                rest = &after[close + 1..];
            }
        }
        found
    }

    #[test]
    fn no_script_spells_a_field_name_or_a_status_word() {
        let mut words: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
        words.extend(RequestStatus::ALL.iter().map(|s| s.as_str()));
        words.extend(VertexStatus::ALL.iter().map(|s| s.as_str()));
        words.extend(Control::ALL.iter().map(|s| s.as_str()));
        words.extend([
            crate::redis::protocol::GROUP,
            crate::redis::protocol::HOOKS_GROUP,
        ]);
        for (file, source) in FILES {
            for literal in literals(source) {
                assert!(
                    !words.contains(&literal.as_str()),
                    "{file} spells `{literal}`: use the prelude's name for it"
                );
            }
        }
    }

    #[test]
    fn the_scan_sees_literals() {
        assert_eq!(
            literals("redis.call('HSET', req, \"st\") -- 'comment'"),
            ["HSET", "st"]
        );
    }
}
