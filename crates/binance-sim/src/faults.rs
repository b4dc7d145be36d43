//! Faults that come and go while the simulator runs: a web-application-firewall block (403) and
//! the main REST listener down. Each is a window of time, set from the configuration at the start
//! or by a test through [`crate::SimHandle`]; the listeners ask whether they are inside one.

use std::sync::Mutex;
use std::time::Instant;

use crate::config::{RestDown, SimConfig, WafScope};

/// What a listener serves, for the WAF's scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Rest,
    Ws,
    DataApi,
}

#[derive(Default)]
pub(crate) struct Faults {
    waf: Mutex<Option<(Instant, Instant, WafScope)>>,
    outage: Mutex<Option<(Instant, Instant, RestDown)>>,
}

impl Faults {
    /// The windows the configuration asks for, counted from now.
    pub(crate) fn new(cfg: &SimConfig) -> Faults {
        let now = Instant::now();
        let f = Faults::default();
        if let Some(w) = cfg.waf {
            f.block(w.scope, now + w.after, now + w.after + w.len);
        }
        if let Some(o) = cfg.rest_outage {
            f.take_down(o.how, now + o.after, now + o.after + o.len);
        }
        f
    }

    /// A 403 block of `scope` from `from` until `until` (replacing any earlier one).
    pub(crate) fn block(&self, scope: WafScope, from: Instant, until: Instant) {
        *self.waf.lock().unwrap_or_else(|e| e.into_inner()) = Some((from, until, scope));
    }

    /// Whether the WAF blocks `l` now.
    pub(crate) fn blocked(&self, l: Listener) -> bool {
        let now = Instant::now();
        let waf = *self.waf.lock().unwrap_or_else(|e| e.into_inner());
        waf.is_some_and(|(from, until, s)| {
            (from..until).contains(&now)
                && match l {
                    Listener::Rest => s.rest,
                    Listener::Ws => s.ws,
                    Listener::DataApi => s.data_api,
                }
        })
    }

    /// The main REST listener down from `from` until `until` (replacing any earlier outage).
    pub(crate) fn take_down(&self, how: RestDown, from: Instant, until: Instant) {
        *self.outage.lock().unwrap_or_else(|e| e.into_inner()) = Some((from, until, how));
    }

    /// How the main REST listener is down now, if it is.
    pub(crate) fn outage(&self) -> Option<RestDown> {
        let now = Instant::now();
        let o = *self.outage.lock().unwrap_or_else(|e| e.into_inner());
        o.filter(|(from, until, _)| (*from..*until).contains(&now)).map(|o| o.2)
    }
}
