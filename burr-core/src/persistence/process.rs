//! [`ProcessIdentity`]: who a process is, so that another process on the same machine
//! can tell when it is gone (a lease left by a killed runner, a run held by a killed
//! worker) without waiting for its lease to expire.
//!
//! On Linux a process is its machine (host name, boot id and PID namespace), its process
//! id and its start time (which tells it from a later process reusing the id), read from
//! `/proc`. Where `/proc` cannot tell (another machine, another PID namespace, no
//! `/proc`, `hidepid`), nobody is ever judged gone: only expiry frees what it held.

use std::fs;

/// Who this process is, as far as leases are concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessIdentity {
    /// The host name (for people).
    pub host: String,
    /// What makes process ids comparable: host name, boot id and PID namespace. Empty
    /// when unknown (no `/proc`), in which case liveness is never checked.
    pub machine: String,
    /// The process id.
    pub pid: u32,
    /// The process start time (clock ticks since boot), which tells a process from a
    /// later one that reuses its id.
    pub started: Option<i64>,
}

impl ProcessIdentity {
    /// This process.
    pub fn current() -> Self {
        let pid = std::process::id();
        let host = read_trimmed("/proc/sys/kernel/hostname")
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown-host".to_owned());
        let boot = read_trimmed("/proc/sys/kernel/random/boot_id");
        let namespace = fs::read_link("/proc/self/ns/pid")
            .ok()
            .map(|link| link.display().to_string());
        // With `hidepid`, other users' processes are invisible: do not mistake them for
        // dead ones.
        let all_visible = fs::metadata("/proc/1/stat").is_ok();
        let machine = match (boot, namespace, all_visible) {
            (Some(boot), Some(namespace), true) => format!("{host}/{boot}/{namespace}"),
            _ => String::new(),
        };
        ProcessIdentity {
            host,
            machine,
            pid,
            started: start_time(pid),
        }
    }

    /// Whether the process `pid` of `machine`, started at `started` (as recorded by
    /// that process's own [`current`](Self::current)), is known to be gone: on this
    /// machine, `/proc/<pid>` is missing, is a zombie, or belongs to a later process
    /// (another start time). A process of another machine, or where this one cannot
    /// tell, is never judged gone.
    pub fn outlived(&self, machine: &str, pid: i64, started: Option<i64>) -> bool {
        if self.machine.is_empty() || machine != self.machine {
            return false;
        }
        let Ok(pid) = u32::try_from(pid) else {
            return true;
        };
        match start_time(pid) {
            None => true,
            Some(now) => started.is_some_and(|s| s != now),
        }
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`), `None` when there
/// is no such process, or only its remains: a process that has exited but that its
/// parent has not reaped yet (a zombie, state `Z`, or `X`) runs nothing any more.
fn start_time(pid: u32) -> Option<i64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or parentheses.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    if matches!(fields.next(), Some("Z" | "X" | "x")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::{Duration, Instant};

    use super::start_time;

    /// The state field of `/proc/<pid>/stat`.
    fn state(pid: u32) -> Option<String> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields = &stat[stat.rfind(')')? + 1..];
        fields.split_whitespace().next().map(str::to_owned)
    }

    #[test]
    fn a_killed_process_not_yet_reaped_has_no_start_time() {
        if std::fs::metadata("/proc/self/stat").is_err() {
            return; // No /proc: liveness is never judged by it.
        }
        let mut child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        assert!(start_time(pid).is_some(), "a running process has one");
        child.kill().expect("kill");
        // Not waited for: it stays a zombie until reaped.
        let deadline = Instant::now() + Duration::from_secs(10);
        while state(pid).as_deref() != Some("Z") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(state(pid).as_deref(), Some("Z"));
        assert_eq!(start_time(pid), None);
        child.wait().expect("reap");
        assert_eq!(start_time(pid), None);
    }
}
