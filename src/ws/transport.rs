//! The byte stream under one WebSocket: plain TCP or rustls over TCP, remembering when it last
//! delivered bytes and how much of the WebSocket's write buffer the socket last refused.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

/// A TCP stream that remembers when it last delivered bytes: one clock read per socket read,
/// shared by every frame in that read.
pub struct TimedTcp {
    tcp: TcpStream,
    last_read_ns: u64,
}

impl Read for TimedTcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        if n > 0 {
            self.last_read_ns = crate::clock::now_ns();
        }
        Ok(n)
    }
}

impl Write for TimedTcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

enum Io {
    Plain(TimedTcp),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TimedTcp>>),
}

/// Plain TCP or rustls over TCP.
pub struct Transport {
    io: Io,
    /// What the last write left unsent (see [`Transport::unsent`]).
    unsent: usize,
}

impl Transport {
    pub fn plain(tcp: TcpStream) -> Transport {
        Transport { io: Io::Plain(TimedTcp { tcp, last_read_ns: 0 }), unsent: 0 }
    }

    pub fn tls(conn: rustls::ClientConnection, tcp: TcpStream) -> Transport {
        let timed = TimedTcp { tcp, last_read_ns: 0 };
        Transport { io: Io::Tls(Box::new(rustls::StreamOwned::new(conn, timed))), unsent: 0 }
    }

    /// Unix ns of the last socket read that returned data.
    pub fn recv_ns(&self) -> u64 {
        match &self.io {
            Io::Plain(t) => t.last_read_ns,
            Io::Tls(s) => s.sock.last_read_ns,
        }
    }

    /// Bytes the last write could not hand on. tungstenite offers its whole pending write buffer
    /// on every write (`FrameCodec::write_out_buffer` in 0.30), so this is how full that buffer
    /// is while the peer is not reading; `tests::unsent_is_the_websocket_write_backlog` checks
    /// that this still holds.
    pub fn unsent(&self) -> usize {
        self.unsent
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.io {
            Io::Plain(t) => t.read(buf),
            Io::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = match &mut self.io {
            Io::Plain(t) => t.write(buf),
            Io::Tls(s) => s.write(buf),
        };
        self.unsent = match &r {
            Ok(n) => buf.len().saturating_sub(*n),
            Err(_) => buf.len(),
        };
        r
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.io {
            Io::Plain(t) => t.flush(),
            Io::Tls(s) => s.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::{ws_config, WRITE_BUFFER_MAX};
    use tungstenite::protocol::Role;
    use tungstenite::{Message, WebSocket};

    /// Our write-buffer check reads tungstenite's backlog through `Transport::unsent`; this pins
    /// both the bound and that reading, against a peer that never reads.
    #[test]
    fn unsent_is_the_websocket_write_backlog() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_peer, _) = listener.accept().unwrap();
        client.set_nonblocking(true).unwrap();
        let transport = Transport::plain(TcpStream::from_std(client));
        let mut ws = WebSocket::from_raw_socket(transport, Role::Client, Some(ws_config()));
        // Fill the kernel's buffers, then ours, with 4 KiB messages until tungstenite refuses one.
        let text = "x".repeat(4096);
        let mut offered = 0usize;
        loop {
            match ws.write(Message::text(text.clone())) {
                Ok(()) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(tungstenite::Error::WriteBufferFull(_)) => break,
                Err(e) => panic!("{e}"),
            }
            offered += text.len();
            // Loopback's socket buffers take a few MiB; past that the buffer must have stopped us.
            assert!(offered < 64 << 20, "no WriteBufferFull after {offered} bytes: the write buffer is unbounded");
        }
        let unsent = ws.get_ref().unsent();
        assert!(unsent <= WRITE_BUFFER_MAX && unsent + text.len() + 14 > WRITE_BUFFER_MAX, "{unsent}");
        // Pongs fill what is left; then the buffer has no room for another one.
        for _ in 0..WRITE_BUFFER_MAX / 100 {
            let _ = ws.write(Message::Pong(vec![7u8; 125].into()));
        }
        assert!(matches!(ws.flush(), Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock));
        let unsent = ws.get_ref().unsent();
        assert!(unsent <= WRITE_BUFFER_MAX, "{unsent}");
        assert!(crate::ws::dial::write_buffer_full(unsent), "{unsent} bytes unsent");
    }
}
