//! How much memory the ring may take: a fixed ceiling, and a share of the container's memory
//! limit when one is visible, so that a ring the container cannot hold is refused at start-up
//! instead of aborting the process on its first allocation under the limit.

use std::path::{Path, PathBuf};

/// Largest ring whatever the machine: 1 GiB is about 30 s of the busiest Binance markets at
/// 100k records/s, far past the point where librdkafka's own queue takes over.
pub const MAX_RING_BYTES: usize = 1 << 30;
/// Smallest ring: a few large depth records.
pub const MIN_RING_BYTES: usize = 64 * 1024;
/// The ring may take at most 1/`RING_SHARE_OF_LIMIT` of the cgroup memory limit: the rest holds
/// librdkafka's queue (`queue.buffering.max.kbytes`, 256 MiB by default), backfill buffers and
/// the process itself.
pub const RING_SHARE_OF_LIMIT: u64 = 4;

/// Values at or above this mean "no limit" (cgroup v1 writes 2^63 rounded down to a page).
const UNLIMITED: u64 = 1 << 62;

/// A `memory.max` (v2: a number or `max`) or `memory.limit_in_bytes` (v1) value.
fn parse_limit(text: &str) -> Option<u64> {
    text.trim().parse::<u64>().ok().filter(|&n| n < UNLIMITED)
}

/// The files that may hold a limit on this process, from `/proc/self/cgroup`: its own cgroup and
/// every ancestor (the effective limit is the smallest), for v2 and v1's memory controller, and
/// the mount roots (what a container sees of its own cgroup when its paths are the host's).
fn limit_files(proc_self_cgroup: &str, root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.join("memory.max"), root.join("memory/memory.limit_in_bytes")];
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let (base, file) = if controllers.is_empty() {
            (root.to_path_buf(), "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("memory"), "memory.limit_in_bytes")
        } else {
            continue;
        };
        // Only plain components: the path comes from the kernel, but `..` would walk out of base.
        let mut dir = base.clone();
        for c in Path::new(path).components() {
            if let std::path::Component::Normal(c) = c {
                dir.push(c);
            }
        }
        while dir != base {
            out.push(dir.join(file));
            if !dir.pop() {
                break;
            }
        }
    }
    out
}

/// The smallest cgroup memory limit over this process's cgroups, if any is set and readable.
pub fn cgroup_memory_limit() -> Option<u64> {
    let root = Path::new("/sys/fs/cgroup");
    let own = crate::small_file::read(Path::new("/proc/self/cgroup"), 64 * 1024).unwrap_or_default();
    limit_files(&String::from_utf8_lossy(&own), root)
        .iter()
        .filter_map(|f| crate::small_file::read(f, 64).ok())
        .filter_map(|b| parse_limit(&String::from_utf8_lossy(&b)))
        .min()
}

/// Why a ring of `bytes` cannot be had under an optional memory limit, if it cannot.
pub(super) fn check_ring(bytes: usize, memory_limit: Option<u64>) -> Result<(), String> {
    if !(MIN_RING_BYTES..=MAX_RING_BYTES).contains(&bytes) {
        return Err(format!("{bytes} is outside {MIN_RING_BYTES}..={MAX_RING_BYTES} (64 KiB to 1 GiB)"));
    }
    match memory_limit {
        Some(limit) if bytes as u64 > limit / RING_SHARE_OF_LIMIT => Err(format!(
            "{bytes} is more than 1/{RING_SHARE_OF_LIMIT} of this container's memory limit ({limit} bytes); \
             the rest is needed for librdkafka's queue and the process"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_unlimited_is_none() {
        assert_eq!(parse_limit("536870912\n"), Some(512 << 20));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712"), None);
        assert_eq!(parse_limit(""), None);
    }

    #[test]
    fn limit_files_walk_every_ancestor_of_both_hierarchies() {
        let root = Path::new("/cg");
        let files = limit_files("12:cpu,cpuacct:/x\n4:memory:/kubepods/pod1/c1\n0::/kubepods/pod1/c1\n", root);
        let f: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
        for want in [
            "/cg/memory.max",
            "/cg/memory/memory.limit_in_bytes",
            "/cg/memory/kubepods/pod1/c1/memory.limit_in_bytes",
            "/cg/memory/kubepods/memory.limit_in_bytes",
            "/cg/kubepods/pod1/c1/memory.max",
            "/cg/kubepods/pod1/memory.max",
            "/cg/kubepods/memory.max",
        ] {
            assert!(f.contains(&want), "{want} missing from {f:#?}");
        }
        assert!(!f.iter().any(|p| p.contains("/x")), "{f:?}");
        assert!(limit_files("0::/../../etc\n", root).iter().all(|p| p.starts_with(root)));
    }

    #[test]
    fn the_ring_must_fit_the_ceiling_and_the_limit() {
        assert_eq!(check_ring(16 << 20, None), Ok(()));
        assert_eq!(check_ring(16 << 20, Some(512 << 20)), Ok(()));
        assert_eq!(check_ring(1 << 30, None), Ok(()));
        assert!(check_ring((1 << 30) + 1, None).unwrap_err().contains("outside 65536..=1073741824"));
        assert!(check_ring(1 << 34, None).unwrap_err().contains("outside"));
        let e = check_ring(200 << 20, Some(512 << 20)).unwrap_err();
        assert!(e.contains("more than 1/4 of this container's memory limit"), "{e}");
    }
}
