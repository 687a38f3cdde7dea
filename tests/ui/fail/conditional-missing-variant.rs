include!("../common.rs");
include!("../branching.rs");

workflow! {
    // No arm for `Skip`: which vertex would take its payload?
    pub Verify = face_detect -> check_face ? {
        Pass => face_match,
        Fail => create_user -> notify,
    } -> generate_result;
}

#[tokio::main]
async fn main() {
    // Run as a whole program would: still the one error, at the `? { ... }`.
    let profile = Verify::run_local(Image("alice".into())).await.unwrap();
    println!("{}", profile.0);
}
