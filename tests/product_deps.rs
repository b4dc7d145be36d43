//! The product ships only the product (issue 10): crates that only the tools use (the load
//! harness's charts, the simulator and its certificates) must not reach the ingester's normal
//! dependencies, which are what `cargo build --bin marketflow-ingestor` (the Dockerfile) links,
//! read from `cargo tree` for every target platform; and the product package builds one binary.

use std::process::Command;

/// Tool-only crates the product must never depend on: the load harness's charts, the
/// simulator's certificate generator, and the simulator itself.
const FORBIDDEN: &[&str] = &["plotters", "rcgen", "binance-sim"];

/// Names of every crate in `package`'s normal dependency tree (itself included).
fn normal_deps(package: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "-p", package, "-e", "normal", "--target", "all", "--prefix", "none"])
        .args(["--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cannot run cargo tree");
    assert!(out.status.success(), "cargo tree -p {package} failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("cargo tree printed UTF-8");
    let deps: Vec<String> = text.lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect();
    // A reading that finds nothing would pass every check below.
    assert!(deps.iter().any(|d| d == package), "cargo tree output not understood: {text}");
    deps
}

fn has(deps: &[String], name: &str) -> bool {
    deps.iter().any(|d| d == name)
}

#[test]
fn tool_only_crates_stay_out_of_the_product() {
    let deps = normal_deps("marketflow-ingestor");
    let found: Vec<&str> = FORBIDDEN.iter().copied().filter(|c| has(&deps, c)).collect();
    assert!(
        found.is_empty(),
        "{found:?} reached the product's dependencies (`cargo tree -p marketflow-ingestor -e normal -i {}` shows \
         how): a tool's dependency belongs in its own crate's Cargo.toml (tools/, crates/)",
        found[0]
    );
}

/// The same reading of the tools' trees does find each forbidden crate: the check above can see
/// a tool's dependency when there is one.
#[test]
fn the_tree_reading_sees_a_tools_dependencies() {
    assert!(has(&normal_deps("loadgen"), "plotters"));
    assert!(has(&normal_deps("loadgen"), "binance-sim"));
    assert!(has(&normal_deps("binance-sim"), "rcgen"));
}

/// `cargo install --path .` installs what the root package builds as binaries: the ingester
/// alone (the simulator's and the load harness's binaries belong to their own crates).
#[test]
fn the_product_package_has_one_binary() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--locked", "--no-deps", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cannot run cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata printed JSON");
    let packages = meta["packages"].as_array().expect("a package list");
    let product = packages.iter().find(|p| p["name"] == "marketflow-ingestor").expect("the root package is listed");
    let bins: Vec<&str> = product["targets"]
        .as_array()
        .expect("a target list")
        .iter()
        .filter(|t| t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin")))
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(bins, ["marketflow-ingestor"], "binaries `cargo install --path .` would install");
}
