//! Compile-time checks of `#[node]` and `workflow!`: one compile-fail case per mistake, with
//! the exact message checked in beside it (`tests/ui/fail/*.stderr`), and cases that must build.
//! Regenerate the messages with `TRYBUILD=overwrite cargo test --test ui` and review the diff.

use std::fs;
use std::path::Path;

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}

/// The README's "Compile errors" section stays true to the cases: each table row's message is
/// an error of its case's `.stderr`, and every case is named in the section.
#[test]
fn readme_lists_every_compile_error() {
    let readme = fs::read_to_string("README.md").expect("read README.md");
    let start = readme
        .find("\n## Compile errors\n")
        .expect("README has a `## Compile errors` section");
    let section = &readme[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];

    let mut problems = Vec::new();
    let mut rows = 0;
    for line in section.lines() {
        // `| mistake | message | `case` |`
        let Some(cells) = line
            .strip_prefix("| ")
            .and_then(|l| l.strip_suffix(" |"))
            .map(|l| l.split(" | ").collect::<Vec<_>>())
        else {
            continue;
        };
        let [_, message, case] = cells[..] else {
            continue;
        };
        let Some(case) = case.strip_prefix('`').and_then(|c| c.strip_suffix('`')) else {
            continue;
        };
        rows += 1;
        let path = Path::new("tests/ui/fail").join(format!("{case}.stderr"));
        let Ok(stderr) = fs::read_to_string(&path) else {
            problems.push(format!("{}: no such case", path.display()));
            continue;
        };
        let found = stderr.lines().any(|l| {
            l.starts_with("error") && l.split_once(": ").is_some_and(|(_, m)| m == message)
        });
        if !found {
            problems.push(format!(
                "{}: no error line reads `{message}`",
                path.display()
            ));
        }
    }
    assert!(
        rows > 0,
        "no table rows found in the README's `Compile errors`"
    );

    for entry in fs::read_dir("tests/ui/fail").expect("list tests/ui/fail") {
        let path = entry.expect("read tests/ui/fail").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let case = path.file_stem().unwrap_or_default().to_string_lossy();
            if !section.contains(&format!("`{case}`")) && !section.contains(&format!("{case}.rs")) {
                problems.push(format!(
                    "{}: not named in the README's `Compile errors`",
                    path.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
