//! The README's settings table names every variable `FlowService::from_env` reads, so a new
//! setting cannot ship undocumented.

use std::collections::BTreeSet;
use std::fs;

/// The `GOFLOW_*` names inside `text` that `pattern` (the text before the name) introduces.
fn names_after(text: &str, pattern: &str) -> BTreeSet<String> {
    text.match_indices(pattern)
        .map(|(at, _)| {
            let rest = &text[at + pattern.len() - "GOFLOW_".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
                .unwrap_or(rest.len());
            rest[..end].to_owned()
        })
        .collect()
}

#[test]
fn readme_lists_every_setting() {
    let settings = fs::read_to_string("goflow-runtime/src/service/settings.rs")
        .expect("read goflow-runtime/src/service/settings.rs");
    let read = names_after(&settings, "var(\"GOFLOW_");
    assert!(read.len() >= 10, "found too few settings: {read:?}");

    let readme = fs::read_to_string("README.md").expect("read README.md");
    let start = readme
        .find("\n### Settings\n")
        .expect("README has a `### Settings` section");
    let section = &readme[start + 1..];
    let section = &section[..section[1..].find("\n#").map_or(section.len(), |e| e + 1)];
    // Rows of the table: `| what | `GOFLOW_X` | `.builder(..)` | default |`.
    let rows: String = section
        .lines()
        .filter(|line| line.starts_with("| "))
        .collect::<Vec<_>>()
        .join("\n");
    let documented = names_after(&rows, "`GOFLOW_");

    let missing: Vec<_> = read.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "README's settings table lacks {missing:?}"
    );
    let stale: Vec<_> = documented.difference(&read).collect();
    assert!(
        stale.is_empty(),
        "README's settings table names {stale:?}, which from_env does not read"
    );
}
