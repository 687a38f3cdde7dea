include!("../common.rs");

// A conditional's variants carry one value each; `Reject` carries none.
#[derive(Clone, Serialize, Deserialize)]
pub enum Decision {
    Accept(Image),
    Reject,
}

#[node]
async fn decide(detection: Detection) -> Decision {
    if detection.0 {
        Decision::Accept(Image("face".into()))
    } else {
        Decision::Reject
    }
}

#[node]
async fn rejected(nothing: ()) -> Match {
    let () = nothing;
    Match(0.0)
}

workflow! {
    pub Verify = face_detect -> decide ? {
        Accept => face_match,
        Reject => rejected,
    } -> finish;
}

#[node]
async fn finish(matched: Match) -> Profile {
    Profile(format!("{}", matched.0))
}

fn main() {}
