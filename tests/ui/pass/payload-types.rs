include!("../common.rs");

use std::collections::HashMap;

// Payload types as the `Data` check sees them: unit, generic, nested, tuples, paths.
#[node]
async fn start(x: u32) {
    let _ = x;
}

#[node]
async fn from_unit(unit: ()) -> Vec<(u32, String)> {
    let () = unit;
    vec![(1, "one".to_owned())]
}

#[node]
async fn index(pairs: Vec<(u32, String)>) -> HashMap<String, u32> {
    pairs.into_iter().map(|(n, s)| (s, n)).collect()
}

#[node]
async fn first(pairs: Vec<(u32, String)>) -> Option<std::string::String> {
    pairs.into_iter().next().map(|(_, s)| s)
}

// A join whose context parameter sits between its inputs.
#[node]
async fn merge(
    map: HashMap<String, u32>,
    ctx: Context,
    name: Option<String>,
) -> Result<[u8; 2], std::io::Error> {
    let _ = ctx.request_id();
    Ok([map.len() as u8, u8::from(name.is_some())])
}

#[derive(Clone, Serialize, Deserialize)]
pub enum Only {
    One([u8; 2]),
}

#[node]
async fn only(bytes: [u8; 2]) -> Only {
    Only::One(bytes)
}

workflow! {
    pub Types = start -> from_unit -> [index, first] => merge;
    // A conditional of one arm.
    pub OneArm = Types -> only ? { One => {} } -> total;
}

#[node]
async fn total(bytes: [u8; 2]) -> u32 {
    u32::from(bytes[0]) + u32::from(bytes[1])
}

fn main() {
    let _ = (Types::NAME, OneArm::NAME);
}
