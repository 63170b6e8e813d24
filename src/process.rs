//! The processes mqlab starts (the sandbox's servers, lesson commands): signalled by process
//! group, reaped, and told apart from a later process that got the same pid. Signals and waits go
//! through rustix; what a process is (start time, process group, working directory) comes from
//! /proc on Linux and from sysinfo elsewhere (macOS).

use std::path::PathBuf;

pub use rustix::process::Signal;
use rustix::process::{Pid, WaitOptions};

fn to_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid).ok().and_then(Pid::from_raw)
}

/// Sends `sig` to the process group led by `pgid`; whether it was delivered. Never to pid 0 or 1:
/// kill(0) is the caller's own group and kill(-1) every process it may signal.
pub fn signal_group(pgid: u32, sig: Signal) -> bool {
    if pgid <= 1 {
        return false;
    }
    to_pid(pgid).is_some_and(|p| rustix::process::kill_process_group(p, sig).is_ok())
}

/// Whether any process of the group led by `pgid` still exists (never for pid 0 or 1).
pub fn group_alive(pgid: u32) -> bool {
    pgid > 1 && to_pid(pgid).is_some_and(|p| rustix::process::test_kill_process_group(p).is_ok())
}

/// Reaps `pid` if it is a child of this process that has exited (so it does not linger as a
/// zombie); whether it was reaped now. Anything else (running, not our child) is left as it is.
pub fn reap(pid: u32) -> bool {
    to_pid(pid).is_some_and(|p| matches!(rustix::process::waitpid(Some(p), WaitOptions::NOHANG), Ok(Some(_))))
}

/// Whether the process still runs (a child that exited is reaped, not counted as alive; one this
/// user may not signal is not counted either).
pub fn alive(pid: u32) -> bool {
    if pid == 0 || reap(pid) {
        return false;
    }
    to_pid(pid).is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

/// What a running process is, as far as telling it from another with the same pid goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// When it started, in this platform's unit: clock ticks after boot on Linux (field 22 of
    /// /proc/PID/stat), seconds since the Unix epoch elsewhere. Compared only with a start time
    /// read on the same machine.
    pub started_at: u64,
    /// The process group it is in.
    pub pgrp: u32,
    /// Its working directory; None where the platform does not tell it for this process.
    pub cwd: Option<PathBuf>,
}

/// What `pid` is now; None when no such process runs (or, on Linux, its /proc entry cannot be
/// read whole: its working directory included).
pub fn seen(pid: u32) -> Option<Seen> {
    if pid == 0 {
        return None;
    }
    #[cfg(target_os = "linux")]
    return proc_fs::seen(pid);
    #[cfg(not(target_os = "linux"))]
    return portable::seen(pid);
}

/// When `pid` started (see `Seen::started_at` for the unit).
pub fn start_time(pid: u32) -> Option<u64> {
    if pid == 0 {
        return None;
    }
    #[cfg(target_os = "linux")]
    return proc_fs::stat(pid).map(|(start, _)| start);
    #[cfg(not(target_os = "linux"))]
    return portable::seen(pid).map(|s| s.started_at);
}

#[cfg(target_os = "linux")]
mod proc_fs {
    use super::Seen;

    /// The start time of a process (field 22 of /proc/<pid>/stat), and its process group (field 5).
    pub fn stat(pid: u32) -> Option<(u64, u32)> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_stat(&text)
    }

    pub fn parse_stat(text: &str) -> Option<(u64, u32)> {
        // The command name (field 2) is in parentheses and may hold spaces: read after the last ')'.
        let rest = text.get(text.rfind(')')? + 2..)?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3.
        let pgrp = fields.get(5 - 3)?.parse().ok()?;
        let start = fields.get(22 - 3)?.parse().ok()?;
        Some((start, pgrp))
    }

    pub fn seen(pid: u32) -> Option<Seen> {
        let (started_at, pgrp) = stat(pid)?;
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
        Some(Seen { started_at, pgrp, cwd: Some(cwd) })
    }
}

/// Without /proc (macOS): the start time and working directory from sysinfo (libproc there), the
/// process group from getpgid. Built on Linux for its tests too.
#[cfg(any(not(target_os = "linux"), test))]
mod portable {
    use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

    use super::Seen;

    pub fn seen(pid: u32) -> Option<Seen> {
        let pgrp = rustix::process::getpgid(Some(super::to_pid(pid)?)).ok()?.as_raw_nonzero().get();
        let spid = Pid::from_u32(pid);
        let mut sys = System::new();
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[spid]),
            false,
            ProcessRefreshKind::nothing().with_cwd(UpdateKind::Always),
        );
        let p = sys.process(spid)?;
        Some(Seen { started_at: p.start_time(), pgrp: u32::try_from(pgrp).ok()?, cwd: p.cwd().map(|c| c.to_path_buf()) })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    use super::*;

    /// A `sleep` leading its own process group in `dir`, killed and reaped when dropped.
    struct Sleeper(Child);

    impl Sleeper {
        fn start(dir: &std::path::Path) -> Sleeper {
            Sleeper(Command::new("sleep").arg("30").current_dir(dir).process_group(0).spawn().unwrap())
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Waits (up to 10 s) until `pid` is gone, reaping it.
    fn gone_within_deadline(pid: u32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !alive(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn a_group_signal_ends_the_leader_and_it_is_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sleeper::start(dir.path());
        let pid = s.0.id();
        assert!(alive(pid));
        assert!(signal_group(pid, Signal::TERM));
        assert!(gone_within_deadline(pid), "the group's leader still runs");
        // Reaped by `alive`: a zombie would still have a /proc entry.
        assert_eq!(seen(pid), None);
        assert!(!signal_group(pid, Signal::KILL), "nothing left to signal");
    }

    #[test]
    fn pid_0_and_1_are_never_signalled_and_0_is_never_seen() {
        assert!(!signal_group(0, Signal::KILL));
        assert!(!signal_group(1, Signal::KILL));
        assert!(!alive(0));
        assert_eq!(seen(0), None);
        assert_eq!(start_time(0), None);
        assert!(!reap(0) && !reap(u32::MAX));
    }

    #[test]
    fn a_child_is_seen_with_its_group_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sleeper::start(dir.path());
        let pid = s.0.id();
        let seen = seen(pid).expect("a running child is seen");
        assert_eq!(seen.pgrp, pid, "it leads the group it was started in");
        assert_eq!(seen.cwd, Some(std::fs::canonicalize(dir.path()).unwrap()));
        assert_eq!(start_time(pid), Some(seen.started_at));
        let other = Sleeper::start(dir.path());
        let theirs = super::seen(other.0.id()).unwrap();
        assert_eq!(theirs.pgrp, other.0.id());
        assert!(theirs.started_at >= seen.started_at);
    }

    /// The reader macOS uses, checked here against what /proc says of the same process.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_portable_reader_agrees_with_proc() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sleeper::start(dir.path());
        let pid = s.0.id();
        let proc_seen = proc_fs::seen(pid).unwrap();
        let portable = portable::seen(pid).expect("sysinfo sees the child");
        assert_eq!(portable.pgrp, proc_seen.pgrp);
        assert_eq!(portable.cwd, proc_seen.cwd);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert!(portable.started_at <= now && now - portable.started_at < 120, "start {} now {now}", portable.started_at);
        drop(s);
        assert!(gone_within_deadline(pid));
        assert_eq!(portable::seen(pid), None, "an ended process is not seen");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn stat_lines_with_spaces_and_parentheses_in_the_name_parse() {
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 0";
        assert_eq!(proc_fs::parse_stat(line), Some((987654, 4242)));
        assert_eq!(proc_fs::parse_stat("4242 (x"), None);
        assert_eq!(proc_fs::parse_stat("4242 (x) S 1"), None);
    }
}
