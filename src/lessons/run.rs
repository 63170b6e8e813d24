//! Running a lesson's command on request: `bash -c` (`sh -c` without bash) with the learner's environment (KUBECONFIG,
//! PATH…), this mqlab first on PATH and its configuration in the environment (so a `mqlab …`
//! line uses the same broker as the app), output streamed line by line with URLs' passwords
//! masked, and a cancel that stops the command's whole process group. Only commands from the
//! lesson files run (see `Lesson::runnable`).

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::process::{Signal, signal_group};

/// How a command run from the app ended.
#[derive(Clone, Debug, PartialEq)]
pub struct ShellDone {
    /// The exit code; None when a signal ended it.
    pub code: Option<i32>,
    pub secs: f64,
    pub cancelled: bool,
}

/// The environment a lesson command gets on top of the learner's: the app's endpoints and track
/// for `mqlab` lines, and this mqlab's folder first on PATH.
pub fn env_for(cfg: &Config) -> Vec<(String, String)> {
    let mut env = vec![
        ("MQLAB_BROKER_URL".to_string(), cfg.broker_url.clone()),
        ("MQLAB_RESULT_BACKEND".to_string(), cfg.result_backend.clone()),
        ("MQLAB_MANAGEMENT_URL".to_string(), cfg.management_url.clone()),
        ("MQLAB_TRACK".to_string(), cfg.track.as_str().to_string()),
        ("MQLAB_KUBE_CONTEXT".to_string(), cfg.kube_context.clone()),
        ("MQLAB_NAMESPACE".to_string(), cfg.namespace.clone()),
        ("MQLAB_DATA_DIR".to_string(), cfg.data_dir.to_string_lossy().to_string()),
    ];
    // The management login, for commands that name it (`curl -u "$MQLAB_MGMT_USER:$MQLAB_MGMT_PASSWORD"`):
    // secrets reach a command through its environment, never through its text.
    let (_, user, password) = cfg.management_login();
    env.push((crate::shell::MGMT_USER_VAR.to_string(), user));
    env.push((crate::shell::MGMT_PASSWORD_VAR.to_string(), password));
    if let Some(dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.to_path_buf())) {
        let mut paths = vec![dir];
        if let Some(p) = std::env::var_os("PATH") {
            paths.extend(std::env::split_paths(&p));
        }
        if let Ok(joined) = std::env::join_paths(paths) {
            env.push(("PATH".to_string(), joined.to_string_lossy().to_string()));
        }
    }
    env
}

/// Runs `cmd` with `bash -c` (or `sh -c`), sending its output (stdout and stderr, by line, in batches) to
/// `lines`, until it exits or `cancel` fires (then SIGTERM to its process group, SIGKILL 2 s later).
pub async fn run(
    cmd: &str,
    env: &[(String, String)],
    lines: mpsc::UnboundedSender<Vec<String>>,
    cancel: oneshot::Receiver<()>,
) -> ShellDone {
    let started = Instant::now();
    let mut command = tokio::process::Command::new(crate::shell::program());
    command.arg("-c").arg(cmd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = lines.send(vec![format!("cannot start {}: {e}", crate::shell::program())]);
            return ShellDone { code: None, secs: started.elapsed().as_secs_f64(), cancelled: false };
        }
    };
    let pgid = child.id();
    // Dropped before the command ends (the app quit): its whole group goes with it.
    let mut guard = GroupGuard(pgid);
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let (out, err, tx_err) = (child.stdout.take(), child.stderr.take(), tx.clone());
    let reading = async move {
        tokio::join!(
            async {
                if let Some(o) = out {
                    read_lines(o, tx).await
                }
            },
            async {
                if let Some(e) = err {
                    read_lines(e, tx_err).await
                }
            }
        );
    };
    // Lines go out in batches (at most every 50 ms), so a chatty command cannot flood the UI.
    let forward = async {
        let mut batch = vec![];
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                l = rx.recv() => match l {
                    Some(l) => batch.push(crate::redact::mask_urls_in(&l)),
                    None => break,
                },
                _ = tick.tick() => if !batch.is_empty() {
                    let _ = lines.send(std::mem::take(&mut batch));
                },
            }
        }
        if !batch.is_empty() {
            let _ = lines.send(batch);
        }
    };
    let mut cancelled = false;
    let status = tokio::select! {
        (st, (), ()) = async { tokio::join!(child.wait(), reading, forward) } => st.ok(),
        // A cancel sender dropped without sending means nobody will cancel.
        _ = async { if cancel.await.is_err() { std::future::pending::<()>().await } } => {
            cancelled = true;
            if let Some(g) = pgid {
                signal_group(g, Signal::TERM);
            }
            match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
                Ok(st) => st.ok(),
                Err(_) => {
                    if let Some(g) = pgid {
                        signal_group(g, Signal::KILL);
                    }
                    child.wait().await.ok()
                }
            }
        }
    };
    guard.0 = None;
    ShellDone { code: status.and_then(|s| s.code()), secs: started.elapsed().as_secs_f64(), cancelled }
}

/// Kills the command's process group when dropped, unless disarmed (`.0 = None`) after it ended.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(g) = self.0 {
            signal_group(g, Signal::KILL);
        }
    }
}

async fn read_lines<R: AsyncRead + Unpin>(r: R, tx: mpsc::UnboundedSender<String>) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        if tx.send(l).is_err() {
            return;
        }
    }
}
