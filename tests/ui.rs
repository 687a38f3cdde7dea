//! Compile-time checks of `#[node]` and `workflow!`: one compile-fail case per mistake, with
//! the exact message checked in beside it (`tests/ui/fail/*.stderr`), and cases that must build.
//! Regenerate the messages with `TRYBUILD=overwrite cargo test --test ui` and review the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
