//! Choosing and pinning cores. Cores always come from the process's allowed CPU set
//! (`sched_getaffinity`): under the kubelet's static CPU manager that set is exactly the
//! exclusive cores the pod was given, which are rarely core 0.

use crate::config::CorePin;

/// CPU ids this process may run on.
pub fn allowed_cores() -> Vec<usize> {
    core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect()
}

/// A pin setting the process cannot honour: the operator's to fix (exit 64).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    #[error("core {core} is not in this process's allowed CPU set {allowed:?}")]
    NotAllowed { core: usize, allowed: Vec<usize> },
}

/// Resolves a pin setting against the allowed set. `taken` is a core already given to another
/// thread, which `Auto` avoids. Returns `Ok(None)` when the thread should not be pinned.
pub fn choose(pin: CorePin, allowed: &[usize], taken: Option<usize>) -> Result<Option<usize>, PinError> {
    match pin {
        CorePin::None => Ok(None),
        CorePin::Core(c) if allowed.contains(&c) => Ok(Some(c)),
        CorePin::Core(c) => Err(PinError::NotAllowed { core: c, allowed: allowed.to_vec() }),
        // The highest allowed core: core 0 (or the first of a set) tends to take more IRQs and
        // housekeeping work.
        CorePin::Auto => Ok(allowed.iter().rev().copied().find(|c| Some(*c) != taken)),
    }
}

/// Pins the calling thread; false if the kernel refused.
pub fn pin_current(core: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: core })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_stay_inside_the_allowed_set() {
        let allowed = [2, 3, 6];
        assert_eq!(choose(CorePin::Auto, &allowed, None), Ok(Some(6)));
        assert_eq!(choose(CorePin::Auto, &allowed, Some(6)), Ok(Some(3)));
        assert_eq!(choose(CorePin::Auto, &[4], Some(4)), Ok(None));
        assert_eq!(choose(CorePin::Core(3), &allowed, None), Ok(Some(3)));
        let e = choose(CorePin::Core(0), &allowed, None).unwrap_err();
        assert_eq!(e, PinError::NotAllowed { core: 0, allowed: allowed.to_vec() });
        assert_eq!(e.to_string(), "core 0 is not in this process's allowed CPU set [2, 3, 6]");
        assert_eq!(choose(CorePin::None, &allowed, None), Ok(None));
    }

    /// Parses the kernel's CPU list format (`0-3,8,10-11`).
    fn cpu_list(list: &str) -> Vec<usize> {
        let mut cpus = Vec::new();
        for part in list.trim().split(',').filter(|p| !p.is_empty()) {
            match part.split_once('-') {
                Some((a, b)) => cpus.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()),
                None => cpus.push(part.parse().unwrap()),
            }
        }
        cpus
    }

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(cpu_list("0-2,5,7-8\n"), [0, 1, 2, 5, 7, 8]);
        assert_eq!(cpu_list("3"), [3]);
    }

    /// `/proc/thread-self/status` is the kernel's own account of this thread's affinity, read
    /// without going through core_affinity's `sched_getaffinity` call. (Check it with a narrowed
    /// set too: `taskset -c 1 cargo test --lib pinning`.)
    #[cfg(target_os = "linux")]
    #[test]
    fn the_allowed_set_is_what_the_kernel_reports() {
        let status = std::fs::read_to_string("/proc/thread-self/status").expect("/proc/thread-self/status");
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .expect("Cpus_allowed_list in /proc/thread-self/status");
        let kernel = cpu_list(list);
        assert!(!kernel.is_empty(), "empty Cpus_allowed_list: {list:?}");
        let mut ours = allowed_cores();
        ours.sort_unstable();
        assert_eq!(ours, kernel, "allowed_cores() vs Cpus_allowed_list {:?}", list.trim());
    }
}
