//! The Lua scripts, one per atomic state transition, and one function per script.

use std::sync::LazyLock;

use fred::prelude::{Client, LuaInterface, Value};
use fred::types::scripts::Script;

macro_rules! script {
    ($name:ident, $($file:literal),+) => {
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::from_lua(concat!($(include_str!(concat!("lua/", $file))),+)));
    };
}

script!(SUBMIT, "submit.lua");
/// The start script takes a batch (the entries of one read): `start.lua` is the body of a
/// function that `batch.lua` runs once per entry.
pub(crate) static START: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(concat!(
        "local function one(KEYS, ARGV)\n",
        include_str!("lua/entry.lua"),
        include_str!("lua/start.lua"),
        "end\n",
        include_str!("lua/batch.lua"),
    ))
});
// The scripts that end an attempt share their opening, after `entry.lua` (which the start
// script shares too).
script!(COMPLETE, "entry.lua", "attempt_end.lua", "complete.lua");
script!(FAIL, "entry.lua", "attempt_end.lua", "fail.lua");
script!(BEGAN, "began.lua");
script!(PROMOTE, "promote.lua");
script!(CONTROL, "control.lua");

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
