//! Every saved result a document points at exists (issue 10: bench-results/ keeps only the runs
//! the documents cite, so a pruned or renamed run must not leave a dangling citation).
//!
//! - In every `.md` file: each `bench-results/...` path, from the repository root.
//! - In the `.md` files under `bench-results/`, which name runs relative to themselves: each
//!   path in backticks, from that file's folder or from the repository root.
//!
//! Placeholders (`bench-results/<run>/latency.svg`, `step-*`) are not paths and are skipped.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Characters of a path as the documents write them.
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '/')
}

/// `bench-results/...` paths in `text`, placeholders left out.
fn bench_paths(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("bench-results/") {
        // Part of a longer name (`rustls-bench-results/`) is not ours.
        if text[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) {
            continue;
        }
        let rest = &text[at..];
        let end = rest.find(|c: char| !is_path_char(c)).unwrap_or(rest.len());
        if rest[end..].starts_with(['<', '*']) {
            continue;
        }
        out.push(rest[..end].trim_end_matches('.'));
    }
    out
}

/// Paths in backticks: no spaces, at least one `/`, not absolute, no placeholder.
fn backticked_paths(text: &str) -> Vec<&str> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| t.contains('/') && !t.starts_with('/') && !t.is_empty() && t.chars().all(is_path_char))
        .collect()
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            // Build output and dot-folders (.git, caches) hold no documents of ours.
            if name != "target" && !name.starts_with('.') {
                markdown_files(&path, out);
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

#[test]
fn every_cited_result_exists() {
    let root = Path::new(ROOT);
    let mut files = Vec::new();
    markdown_files(root, &mut files);
    let mut missing = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let rel = file.strip_prefix(root).unwrap();
        for p in bench_paths(&text) {
            checked += 1;
            if !root.join(p).exists() {
                missing.push(format!("{}: {p}", rel.display()));
            }
        }
        if rel.starts_with("bench-results") {
            let here = file.parent().unwrap();
            for p in backticked_paths(&text) {
                checked += 1;
                if !here.join(p).exists() && !root.join(p).exists() {
                    missing.push(format!("{}: {p}", rel.display()));
                }
            }
        }
    }
    // README.md, tuning.md and bench-results/README.md cite runs: finding none means the
    // scan is broken, not that the documents are right.
    assert!(checked >= 10, "only {checked} citations found in {} .md files", files.len());
    assert!(missing.is_empty(), "cited but not in the repository:\n{}", missing.join("\n"));
}

#[test]
fn citations_are_read_as_written() {
    let text = "chart (`bench-results/<run>/latency.svg`), see bench-results/noise-floor/table.md.\n\
                rustls-bench-results/x, `bench-results/soak-100.0k-10min/`; step-* folders";
    assert_eq!(bench_paths(text), ["bench-results/noise-floor/table.md", "bench-results/soak-100.0k-10min/"]);
    let text = "| `noise-floor/` | `loadgen --noise 10` | `/latency/<stage>` | `step-*/` | `summary.json` |";
    assert_eq!(backticked_paths(text), ["noise-floor/"]);
}
