//! Imports run down the layers (issue 10): every `crate::<module>` path in `src/` names a module of
//! the same layer or of a layer below, as the table in `src/lib.rs` ("# Layers") orders them.
//! A module the table does not place fails too, so a new module is placed when it is added.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A layer of the table: its rank (0 = the bottom), its name, whether its modules may use one
/// another, and whether it is the tools' layer (above everything, used by nothing).
#[derive(Clone, Debug)]
struct Layer {
    rank: usize,
    name: String,
    independent: bool,
    tools: bool,
}

/// Module -> its layer, from the `layer NAME [independent]: modules...` and `tools: modules...`
/// lines of lib.rs's table (top layer first).
fn layers(lib_rs: &str) -> HashMap<String, Layer> {
    let mut rows: Vec<(String, bool, bool, Vec<String>)> = Vec::new();
    for line in lib_rs.lines() {
        let Some(l) = line.strip_prefix("//! ") else { continue };
        let (head, mods) = match l.split_once(':') {
            Some((h, m)) if h.starts_with("layer ") || h == "tools" => (h, m),
            _ => continue,
        };
        let words: Vec<&str> = head.split_whitespace().collect();
        let tools = head == "tools";
        let name = if tools { "tools" } else { words[1] };
        let independent = words.contains(&"independent");
        rows.push((name.into(), independent, tools, mods.split_whitespace().map(String::from).collect()));
    }
    // Tools come last in the text but rank above every layer.
    let (tools, mut ordered): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.2);
    ordered.reverse();
    ordered.extend(tools);
    let mut map = HashMap::new();
    for (rank, (name, independent, tools, mods)) in ordered.into_iter().enumerate() {
        for m in mods {
            let layer = Layer { rank, name: name.clone(), independent, tools };
            assert!(map.insert(m.clone(), layer).is_none(), "module {m} is placed twice in lib.rs's table");
        }
    }
    map
}

/// The top-level modules a source text names through `crate::`, with the line each is on.
/// Comment lines are skipped: a doc link is not an import.
fn imports(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        for (at, _) in line.match_indices("crate::") {
            // `marketflow_ingestor::` or `some_crate::` is not our crate.
            if line[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &line[at + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                // `crate::{a, b::c}` on one line.
                Some(group) => group.split([',', '}']).map(|s| s.trim().split("::").next().unwrap_or("")).collect(),
                None => vec![rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("")],
            };
            for name in names {
                // Items of the crate root (`crate::GIT_COMMIT`) are not modules.
                if name.starts_with(|c: char| c.is_ascii_lowercase()) {
                    out.push((n + 1, name.to_string()));
                }
            }
        }
    }
    out
}

/// The top-level module a file under `src/` belongs to (`src/ws/dial.rs` -> `ws`); `None` for the
/// crate root and the binaries, which wire everything.
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    if matches!(first, "lib.rs" | "main.rs" | "bin") {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_string())
}

/// Every broken rule in `files` (path relative to `src/`, text), as one line each.
fn violations(table: &HashMap<String, Layer>, files: &[(PathBuf, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (rel, text) in files {
        let Some(from) = module_of(rel) else { continue };
        let Some(from_layer) = table.get(&from) else {
            out.push(format!("src/{}: module `{from}` is not in lib.rs's layer table", rel.display()));
            continue;
        };
        for (line, to) in imports(text) {
            if to == from {
                continue;
            }
            let at = format!("src/{}:{line}", rel.display());
            let Some(to_layer) = table.get(&to) else {
                out.push(format!("{at}: imports `crate::{to}`, which is not in lib.rs's layer table"));
                continue;
            };
            if to_layer.tools && !from_layer.tools {
                out.push(format!("{at}: `{from}` ({}) imports the tool `{to}`", from_layer.name));
            } else if to_layer.rank > from_layer.rank {
                out.push(format!(
                    "{at}: `{from}` (layer {}) imports `crate::{to}` from the layer above it ({})",
                    from_layer.name, to_layer.name
                ));
            } else if to_layer.rank == from_layer.rank && from_layer.independent {
                out.push(format!(
                    "{at}: `{from}` imports `crate::{to}`, but the modules of layer {} are independent",
                    from_layer.name
                ));
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src/") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn source() -> (HashMap<String, Layer>, Vec<(PathBuf, String)>) {
    let src = Path::new(ROOT).join("src");
    let table = layers(&std::fs::read_to_string(src.join("lib.rs")).expect("read lib.rs"));
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let files = paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read source");
            (p.strip_prefix(&src).expect("under src").to_path_buf(), text)
        })
        .collect();
    (table, files)
}

#[test]
fn imports_run_down_the_layers() {
    let (table, files) = source();
    // A table that lost its lines, or a walk that found nothing, would pass everything.
    assert!(table.len() >= 20, "lib.rs's layer table not understood: {table:?}");
    assert!(files.len() >= 30, "src/ not read");
    let bad = violations(&table, &files);
    assert!(bad.is_empty(), "imports against the layers (see src/lib.rs, # Layers):\n{}", bad.join("\n"));
}

#[test]
fn every_module_declared_in_lib_rs_is_placed() {
    let (table, _) = source();
    let lib = std::fs::read_to_string(Path::new(ROOT).join("src/lib.rs")).unwrap();
    for m in lib.lines().filter_map(|l| l.strip_prefix("pub mod ")).map(|m| m.trim_end_matches(';')) {
        assert!(table.contains_key(m), "`pub mod {m}` has no layer in lib.rs's table");
    }
}

#[test]
fn a_planted_upward_import_is_caught() {
    let (table, _) = source();
    let planted = |path: &str, text: &str| violations(&table, &[(PathBuf::from(path), text.to_string())]);
    // The model reaching up into the engine.
    let bad = planted("record.rs", "use crate::event_loop::EventLoop;\n");
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].contains("src/record.rs:1") && bad[0].contains("layer model") && bad[0].contains("(loop)"));
    // Grouped, in a submodule, and in a full path inside an expression.
    assert_eq!(planted("binance/wire.rs", "use crate::{clock, metrics::Metrics};\n").len(), 1);
    assert_eq!(planted("ring.rs", "    let x = crate::sink::NullSink::new(m);\n").len(), 1);
    // Independent stages: the sink may not use the backfill.
    let bad = planted("sink.rs", "use crate::backfill::OwnedRecord;\n");
    assert!(bad.len() == 1 && bad[0].contains("independent"), "{bad:?}");
    // The product may not use the tools; a module nobody placed is named.
    assert_eq!(planted("pipeline.rs", "use crate::sim::Market;\n").len(), 1);
    assert_eq!(planted("newthing.rs", "").len(), 1);
    // Downward imports, doc links and other crates' paths pass.
    assert!(planted(
        "pipeline.rs",
        "use crate::record::Record;\n/// [`crate::event_loop`]\nuse other_crate::event_loop;\n"
    )
    .is_empty());
}
