//! The product ships only the product (issue 10): crates that only the tools use (the load
//! harness's charts, the simulator's certificates) must not reach the ingester's normal
//! dependencies, which are what `cargo build --bin marketflow-ingestor` (the Dockerfile) links.
//! Read from `cargo tree`, for every target platform.

use std::process::Command;

/// Tool-only crates the product must never depend on.
const FORBIDDEN: &[&str] = &["plotters"];

/// Tool-only crates the product still depends on, each with what keeps it there. When one leaves
/// the product's tree, `pending_crates_are_still_there` fails: move it to `FORBIDDEN` then, so
/// that it cannot come back unnoticed.
const PENDING: &[(&str, &str)] =
    &[("rcgen", "src/tls.rs generates the simulator's self-signed certificate until src/sim moves to its own crate")];

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

#[test]
fn pending_crates_are_still_there() {
    let deps = normal_deps("marketflow-ingestor");
    for (name, why) in PENDING {
        assert!(
            has(&deps, name),
            "{name} is no longer a dependency of the product ({why}): move it from PENDING to FORBIDDEN \
             in tests/product_deps.rs"
        );
    }
}

/// The same reading of the load harness's tree does find its charting crate: the check above
/// can see a tool's dependency when there is one.
#[test]
fn the_tree_reading_sees_a_tools_dependencies() {
    assert!(has(&normal_deps("loadgen"), "plotters"));
}
