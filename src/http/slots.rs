//! The table of open connections: never more than `max` at once. A connection arriving at the
//! limit is served, and the least recently active one is closed to make room for it. Refusing the
//! newcomer instead would let `max` idle or trickling sockets lock the kubelet's probes out until
//! they time out, which is the very outage this bound exists to prevent; a probe, by contrast,
//! is always the most recently active connection, so it is the last one a flood can push out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

/// What a connection's request handling updates, read when choosing whom to evict.
pub struct Activity {
    epoch: Instant,
    /// When the connection was accepted or last started a request, ns since `epoch`.
    last_ns: AtomicU64,
    /// Requests started on the connection: tells an idle keep-alive (>0) from a client that never
    /// sent a whole request header (0) when the header read timeout closes it.
    requests: AtomicU64,
}

impl Activity {
    /// A request started on this connection.
    pub fn request(&self) {
        self.last_ns.store(self.epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

pub struct Slots {
    max: usize,
    epoch: Instant,
    /// Only the server's single thread touches it (accept loop and connection tasks), so the lock
    /// is never contended; it is a `Mutex` because tokio tasks must be `Send`.
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: Vec<Entry>,
}

struct Entry {
    id: u64,
    activity: Arc<Activity>,
    /// Dropping it (eviction) completes the connection task's receiver: the task ends at once.
    _evict: oneshot::Sender<()>,
}

/// One admitted connection. Dropping it frees the slot, also when the task unwinds from a panic.
pub struct Slot {
    id: u64,
    slots: Arc<Slots>,
    pub activity: Arc<Activity>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.slots.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = t.open.iter().position(|e| e.id == self.id) {
            t.open.swap_remove(i);
        }
    }
}

/// A new connection's place: its slot, the signal that it was evicted, and whether another
/// connection was evicted to make room for it.
pub struct Admitted {
    pub slot: Slot,
    pub evicted: oneshot::Receiver<()>,
    pub made_room: bool,
}

impl Slots {
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots { max: max.max(1), epoch: Instant::now(), table: Mutex::default() })
    }

    /// Admits a new connection, evicting the least recently active one if the table is full.
    pub fn admit(self: &Arc<Self>) -> Admitted {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut made_room = false;
        if t.open.len() >= self.max {
            let oldest = (0..t.open.len()).min_by_key(|&i| t.open[i].activity.last_ns.load(Ordering::Relaxed));
            if let Some(i) = oldest {
                t.open.swap_remove(i);
                made_room = true;
            }
        }
        let id = t.next_id;
        t.next_id += 1;
        let now = self.epoch.elapsed().as_nanos() as u64;
        let activity =
            Arc::new(Activity { epoch: self.epoch, last_ns: AtomicU64::new(now), requests: AtomicU64::new(0) });
        let (tx, rx) = oneshot::channel();
        t.open.push(Entry { id, activity: activity.clone(), _evict: tx });
        Admitted { slot: Slot { id, slots: self.clone(), activity }, evicted: rx, made_room }
    }

    /// Connections open now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot::error::TryRecvError;

    #[test]
    fn the_least_recently_active_connection_makes_room_and_a_closed_one_frees_its_slot() {
        let slots = Slots::new(3);
        let mut a = slots.admit();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let mut b = slots.admit();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let mut c = slots.admit();
        assert!(!a.made_room && !b.made_room && !c.made_room);
        assert_eq!(slots.open(), 3);

        // `a` is the oldest, but a request makes it the most recent: `b` goes first.
        std::thread::sleep(std::time::Duration::from_millis(2));
        a.slot.activity.request();
        let mut d = slots.admit();
        assert!(d.made_room);
        assert_eq!(b.evicted.try_recv(), Err(TryRecvError::Closed));
        assert_eq!(a.evicted.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(c.evicted.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(slots.open(), 3);
        assert_eq!(a.slot.activity.requests(), 1);

        // The evicted connection's task ends later and drops its slot: nothing else is removed.
        drop(b);
        assert_eq!(slots.open(), 3);
        // A connection that ends by itself frees its place: the next one needs no eviction.
        drop(c);
        assert_eq!(slots.open(), 2);
        let e = slots.admit();
        assert!(!e.made_room);
        assert_eq!(d.evicted.try_recv(), Err(TryRecvError::Empty));
    }
}
