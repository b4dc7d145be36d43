//! Records the git commit for `--version` and the `build_info` metric. Builds without a
//! checkout (a Docker context without .git) pass `GIT_COMMIT` instead, or get "unknown".
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=GIT_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs");
    let commit = std::env::var("GIT_COMMIT").ok().filter(|s| !s.is_empty()).or_else(|| {
        let out = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    println!("cargo:rustc-env=MARKETFLOW_GIT_COMMIT={}", commit.unwrap_or_else(|| "unknown".into()));
}
