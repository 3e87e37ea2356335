//! docs/library.md's embedding example is the crate doc's doctest, word for
//! word, so the document's code is compiled by `cargo test`.

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("missing {start:?}"))
        + start.len();
    let to = text[from..]
        .find(end)
        .unwrap_or_else(|| panic!("missing {end:?}"))
        + from;
    &text[from..to]
}

#[test]
fn readme_example_is_the_crate_doctest() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../docs/library.md")).expect("docs/library.md");
    let section = &readme[readme.find("## What it does").expect("its first section")..];
    let readme_example = between(section, "```rust,no_run\n", "```\n");

    let lib = std::fs::read_to_string(root.join("src/lib.rs")).expect("lib.rs");
    let doc_example: String = between(&lib, "//! ```no_run\n", "//! ```\n")
        .lines()
        .map(|line| line.strip_prefix("//!").unwrap_or(line))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(readme_example, doc_example);
}
