//! Choosing and pinning cores. Cores always come from the process's allowed CPU set
//! (`sched_getaffinity`): under the kubelet's static CPU manager that set is exactly the
//! exclusive cores the pod was given, which are rarely core 0.

use crate::config::CorePin;

/// CPU ids this process may run on.
pub fn allowed_cores() -> Vec<usize> {
    core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect()
}

/// Resolves a pin setting against the allowed set. `taken` is a core already given to another
/// thread, which `Auto` avoids. Returns `Ok(None)` when the thread should not be pinned.
pub fn choose(pin: CorePin, allowed: &[usize], taken: Option<usize>) -> Result<Option<usize>, String> {
    match pin {
        CorePin::None => Ok(None),
        CorePin::Core(c) if allowed.contains(&c) => Ok(Some(c)),
        CorePin::Core(c) => Err(format!("core {c} is not in this process's allowed CPU set {allowed:?}")),
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
        assert!(choose(CorePin::Core(0), &allowed, None)
            .unwrap_err()
            .contains("not in this process's allowed CPU set"));
        assert_eq!(choose(CorePin::None, &allowed, None), Ok(None));
    }

    #[test]
    fn the_allowed_set_is_what_the_kernel_reports() {
        let a = allowed_cores();
        assert!(!a.is_empty());
        assert!(a.len() <= std::thread::available_parallelism().map(|n| n.get()).unwrap_or(usize::MAX).max(a.len()));
    }
}
