//! A single-node broker for one run-alone test (PLAINTEXT only), started by `scripts/kafka.sh` on
//! ports and a data directory of its own, stopped and wiped when dropped: the tests running beside
//! it, and anyone using the shared broker on 9092, never see what is done to it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use super::kafka_script;

pub struct OwnBroker {
    pub port: u16,
    data_dir: PathBuf,
    pub bootstrap: String,
    /// The JVM's pid while it is paused ([`OwnBroker::pause`]), to resume it whatever happens.
    paused: Option<i32>,
}

impl OwnBroker {
    /// `name` tells the data directories of the tests apart.
    pub fn start(name: &str) -> OwnBroker {
        let port = free_port_pair();
        let data_dir = std::env::temp_dir().join(format!("marketflow-kafka-{name}-{}-{port}", std::process::id()));
        let mut b = OwnBroker { port, data_dir, bootstrap: String::new(), paused: None };
        let out = b.script("start");
        b.bootstrap = String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string();
        assert_eq!(b.bootstrap, format!("127.0.0.1:{port}"));
        b
    }

    /// `scripts/kafka.sh CMD` for this broker: its port, the controller's (the next one), its
    /// data directory, and no SASL_SSL listener, whatever the caller's environment says.
    pub fn command(&self, cmd: &str) -> Command {
        let mut c = Command::new("bash");
        c.arg(kafka_script())
            .arg(cmd)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", (self.port + 1).to_string())
            .env("KAFKA_SASL", "off")
            .env("KAFKA_DATA_DIR", &self.data_dir)
            .stderr(Stdio::inherit());
        c
    }

    pub fn script(&self, cmd: &str) -> Output {
        let out = self.command(cmd).output().expect("run kafka.sh");
        assert!(out.status.success(), "kafka.sh {cmd} (own broker on {}) failed", self.port);
        out
    }

    /// The broker's JVM, from the pid file `kafka.sh` keeps in this broker's own data directory,
    /// checked to be a Kafka broker run from that directory (never another process, never the
    /// shared broker).
    fn pid(&self) -> i32 {
        let text = std::fs::read_to_string(self.data_dir.join("kafka.pid")).expect("the own broker's pid file");
        let pid: i32 = text.trim().parse().expect("a pid in kafka.pid");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("the own broker runs");
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            cmdline.contains("kafka.Kafka") && cmdline.contains(&*self.data_dir.to_string_lossy()),
            "pid {pid} is not this test's broker: {cmdline}"
        );
        pid
    }

    /// Freezes the broker (SIGSTOP): its sockets stay open and the kernel keeps accepting
    /// connections and data, but nothing is answered, as a paused JVM, a full disk or a
    /// throttled namespace does.
    pub fn pause(&mut self) {
        let pid = self.pid();
        // SAFETY: signalling a process we checked is our own broker.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0, "SIGSTOP {pid}");
        self.paused = Some(pid);
    }

    /// Lets a paused broker run again (SIGCONT).
    pub fn resume(&mut self) {
        if let Some(pid) = self.paused.take() {
            // SAFETY: the pid we stopped, still ours (a stopped process cannot exit).
            assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0, "SIGCONT {pid}");
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        // A broker left paused by a failed test would take SIGTERM only once resumed.
        if let Some(pid) = self.paused.take() {
            // SAFETY: as in `resume`.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
        // Stops it and removes its data directory (kafka.sh wipes only a directory that is a
        // broker's).
        let _ = self.command("reset").status();
    }
}

/// A free port whose successor is free too (the broker's controller listens there).
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free ports on 127.0.0.1");
}
