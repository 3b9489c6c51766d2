//! Keeps `spec` pure: it must not read clocks, touch the file system or network, start
//! threads, use async runtimes, draw OS randomness or iterate hash-ordered collections.
//! See ARCHITECTURE.md, "The one rule". Also keeps debugging leftovers out of every crate.

use std::path::{Path, PathBuf};

/// Tokens that must not appear in `spec/src` (outside comments), with the reason.
const FORBIDDEN_IN_SPEC: &[(&str, &str)] = &[
    (
        "Instant::now",
        "wall-clock time; pass `now_ms` or use tick()",
    ),
    ("SystemTime", "wall-clock time; pass `now_ms` or use tick()"),
    (
        "thread_rng",
        "OS randomness; use the seeded generator in the state",
    ),
    (
        "OsRng",
        "OS randomness; use the seeded generator in the state",
    ),
    (
        "getrandom",
        "OS randomness; use the seeded generator in the state",
    ),
    ("HashMap", "hash-ordered iteration; use BTreeMap"),
    ("HashSet", "hash-ordered iteration; use BTreeSet"),
    ("std::fs", "file-system I/O belongs in impl/"),
    ("std::net", "network I/O belongs in impl/"),
    ("std::thread", "threads belong in impl/"),
    ("tokio", "async runtimes belong in impl/"),
    ("async fn", "spec is synchronous"),
    (".await", "spec is synchronous"),
    ("std::env", "environment is configuration, read by impl/"),
    ("std::process", "processes belong in impl/"),
];

/// Tokens that must not appear in any crate's sources.
const FORBIDDEN_EVERYWHERE: &[(&str, &str)] = &[
    ("dbg!(", "debugging leftover"),
    ("todo!(", "unfinished code"),
    ("unimplemented!(", "unfinished code"),
    ("FIXME", "unfinished code; use TODO(#issue)"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code part of a line: text before a `//` comment (good enough for a tidy check:
/// a string containing `//` only makes the check more lenient, never wrongly failing).
fn code_part(line: &str) -> &str {
    line.split_once("//").map_or(line, |(code, _)| code)
}

fn violations(root: &Path, rules: &[(&str, &str)], skip_self: bool) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let me = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/purity.rs")
        .canonicalize()
        .expect("this file exists");
    let mut found = Vec::new();
    for file in files {
        if skip_self && file.canonicalize().is_ok_and(|f| f == me) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (number, line) in text.lines().enumerate() {
            for (token, why) in rules {
                if code_part(line).contains(token) {
                    found.push(format!(
                        "{}:{}: `{token}`: {why}",
                        file.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn spec_sources_use_no_io_clock_threads_or_hash_order() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src, FORBIDDEN_IN_SPEC, false);
    assert!(
        found.is_empty(),
        "spec/ must stay pure:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_crate_has_debugging_leftovers() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let found = violations(&workspace, FORBIDDEN_EVERYWHERE, true);
    assert!(
        found.is_empty(),
        "debugging leftovers:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_purity_check_can_fail() {
    let dir = std::env::temp_dir().join(format!("oxetcd-purity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    std::fs::write(
        dir.join("bad.rs"),
        "fn f() { let _ = std::time::Instant::now(); }\n",
    )
    .expect("temp file is writable");
    std::fs::write(dir.join("ok.rs"), "// Instant::now in a comment is fine\n")
        .expect("temp file is writable");
    let found = violations(&dir, FORBIDDEN_IN_SPEC, false);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("bad.rs:1"), "{found:?}");
}
