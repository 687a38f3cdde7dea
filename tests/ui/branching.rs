// Nodes for the conditional and for-each cases, beside `common.rs` (included after it).

/// What `check_face` makes of a detection: each variant carries what its arm takes.
#[derive(Clone, Serialize, Deserialize)]
pub enum FaceCheck {
    Pass(Image),
    Fail(Detection),
    Skip(Match),
}

#[derive(Clone, Serialize, Deserialize)]
pub struct User(pub String);

#[node]
async fn check_face(detection: Detection) -> FaceCheck {
    if detection.0 {
        FaceCheck::Pass(Image("face".into()))
    } else {
        FaceCheck::Fail(detection)
    }
}
#[node]
async fn create_user(detection: Detection) -> User {
    User(format!("{}", detection.0))
}
#[node]
async fn notify(user: User) -> Match {
    Match(user.0.len() as f64)
}
#[node]
async fn generate_result(matched: Match) -> Profile {
    Profile(format!("{}", matched.0))
}
#[node]
async fn list_images(region: String) -> Vec<Image> {
    vec![Image(region)]
}
#[node]
async fn flag(detection: Detection) -> bool {
    !detection.0
}
#[node]
async fn count_flags(flags: Vec<bool>) -> u32 {
    flags.iter().filter(|f| **f).count() as u32
}
