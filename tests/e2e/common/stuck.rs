//! What a child that did not stop in time was doing: each of its threads' name, state and kernel
//! wait channel (from /proc), and their stacks when gdb is installed. A shutdown that overran its
//! bound on a loaded CI machine is otherwise a bare "did not stop" with no thread to suspect.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for gdb's stacks: the report must not become the next hang.
const GDB_BOUND: Duration = Duration::from_secs(20);

/// One line per thread of `pid` (`name state wchan`), then gdb's `thread apply all bt` if gdb
/// answers within [`GDB_BOUND`].
pub fn report(pid: u32) -> String {
    let mut out = format!("threads of {pid} still running (name, state, kernel wait):\n");
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.flatten().collect::<Vec<_>>());
    match tasks {
        Ok(mut tasks) => {
            tasks.sort_by_key(|t| t.file_name());
            for t in tasks {
                let read = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap_or_default();
                let stat = read("stat");
                // The state follows the parenthesised name, which may itself hold spaces.
                let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).unwrap_or("?");
                out += &format!("  {:<16} {state} {}\n", read("comm").trim(), read("wchan").trim());
            }
        }
        Err(e) => out += &format!("  (cannot read /proc/{pid}/task: {e})\n"),
    }
    out + &stacks(pid)
}

fn stacks(pid: u32) -> String {
    let child = Command::new("gdb")
        .args(["-batch", "-nx", "-p", &pid.to_string(), "-ex", "thread apply all bt 30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else { return "(no gdb here: no stacks)\n".into() };
    let t = Instant::now();
    while t.elapsed() < GDB_BOUND {
        if let Ok(Some(_)) = child.try_wait() {
            let Ok(out) = child.wait_with_output() else { return "(gdb's output was lost)\n".into() };
            let text = String::from_utf8_lossy(&out.stdout);
            // Only the frames: gdb's banner and symbol-loading chatter say nothing here.
            let frames: Vec<&str> = text.lines().filter(|l| l.starts_with("Thread ") || l.starts_with('#')).collect();
            if frames.is_empty() {
                // Attaching can be refused (ptrace_scope): say why rather than print nothing.
                let err = String::from_utf8_lossy(&out.stderr);
                return format!("(gdb gave no stacks, {}: {})\n", out.status, err.lines().last().unwrap_or("").trim());
            }
            return format!("stacks (gdb):\n{}\n", frames.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    format!("(gdb gave no stacks within {GDB_BOUND:?})\n")
}
