//! What the event loop asks of a connection when its lane changes transport
//! (`event_loop/switch.rs`): how it has fared, a make-before-break move to the other
//! transport, and the undoing of one that did not work out.

use super::{Connection, State};

impl Connection {
    /// Attempts in a row that did not lead to a stable connection (refused, TLS or upgrade
    /// failure, timeout, lost before [`super::STABLE_AFTER`]), the loss that began them included.
    pub fn failures(&self) -> u32 {
        self.attempt
    }

    /// Open: the connection streams (or is about to), whatever happens to it next.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// Asks for a replacement opened beside this open connection, at once (as the age limit
    /// does): the event loop builds it for the lane's transport of the moment.
    pub fn ask_rotation(&mut self) {
        if self.is_open() && !self.retiring {
            self.rotate = true;
            self.rotate_by_peer = false;
        }
    }

    /// Its replacement is given up (it could not connect): this connection streams on as if
    /// none had been asked for.
    pub fn abandon_rotation(&mut self) {
        self.retiring = false;
        self.rotate = false;
        self.rotate_by_peer = false;
    }
}
