//! Lesson commands run on request: the commands a lesson marks runnable, filled with the live
//! configuration, run by `sh -c` against fake `kubectl` and `helm` executables on PATH — output
//! streamed, exit code and duration reported, a long run cancelled with its whole process group.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use mqlab::config::{Config, Overrides, Track};
use mqlab::lessons::Course;
use mqlab::lessons::run::{ShellDone, env_for, run};
use tokio::sync::{mpsc, oneshot};

fn config(track: Track, broker: &str) -> Config {
    let broker = broker.to_string();
    let env = move |k: &str| match k {
        "MQLAB_CONFIG" => Some("/nonexistent/config.toml".to_string()),
        "MQLAB_DATA_DIR" => Some("/nonexistent-data".to_string()),
        "MQLAB_BROKER_URL" => Some(broker.clone()),
        _ => None,
    };
    Config::load_with(&Overrides { track: Some(track), ..Default::default() }, &env).unwrap()
}

/// Fake `kubectl` and `helm`: they print what they were asked, the `logs -f` / `get -w` forms
/// run until stopped (writing their pid first), and `--fail` exits 3.
fn fake_bin(dir: &Path) {
    let script = |name: &str| {
        format!(
            "#!/bin/sh\necho \"{name} $*\"\ncase \"$*\" in\n  *\" -f \"*|*\" -w\"*) echo $$ > \"{dir}/{name}.pid\"; while :; do sleep 0.1; done ;;\n  *--fail*) echo \"{name}: failed\" >&2; exit 3 ;;\nesac\n",
            dir = dir.display()
        )
    };
    for name in ["kubectl", "helm"] {
        let p = dir.join(name);
        std::fs::write(&p, script(name)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

async fn run_collect(cmd: &str, env: &[(String, String)], cancel_after: Option<Duration>) -> (Vec<String>, ShellDone) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (cancel, cancelled) = oneshot::channel();
    let canceller = async {
        match cancel_after {
            Some(d) => {
                tokio::time::sleep(d).await;
                let _ = cancel.send(());
            }
            None => drop(cancel),
        }
    };
    let collect = async {
        let mut all = vec![];
        while let Some(batch) = rx.recv().await {
            all.extend(batch);
        }
        all
    };
    let (done, (), lines) = tokio::join!(run(cmd, env, tx, cancelled), canceller, collect);
    (lines, done)
}

fn env_with_path(cfg: &Config, bin: &Path) -> Vec<(String, String)> {
    let mut env = env_for(cfg);
    for (k, v) in env.iter_mut() {
        if k == "PATH" {
            *v = format!("{}:{v}", bin.display());
        }
    }
    env
}

#[tokio::test]
async fn lesson_commands_run_with_output_exit_code_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    fake_bin(dir.path());
    let cfg = config(Track::K3s, "amqp://admin:admin123@localhost:5672//");
    let course = Course::embedded().unwrap();
    let env = env_with_path(&cfg, dir.path());

    // Lesson 2's namespace block, as the app would run it.
    let l2 = &course.lessons[1];
    let cmds = l2.runnable(Track::K3s, &cfg);
    assert!(cmds.len() >= 2, "{cmds:?}");
    assert_eq!(cmds[0].command, "kubectl create namespace messaging\nkubectl get namespaces");
    let (lines, done) = run_collect(&cmds[0].command, &env, None).await;
    assert_eq!(lines, vec!["kubectl create namespace messaging", "kubectl get namespaces"]);
    assert_eq!(done.code, Some(0));
    assert!(!done.cancelled);

    // The Helm block ends with `kubectl get pods -w`, which runs until cancelled: its whole
    // process group stops.
    let helm = cmds.iter().find(|c| c.command.contains("helm install rabbitmq")).unwrap();
    let (lines, done) = run_collect(&helm.command, &env, Some(Duration::from_millis(800))).await;
    assert!(
        lines.iter().any(|l| l.starts_with("helm install rabbitmq oci://registry-1.docker.io/bitnamicharts/rabbitmq --version 16.0.14")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == "kubectl get pods -n messaging -w"), "{lines:?}");
    assert!(done.cancelled, "{done:?}");
    let pid: i32 = std::fs::read_to_string(dir.path().join("kubectl.pid")).unwrap().trim().parse().unwrap();
    let mut gone = false;
    for _ in 0..50 {
        if unsafe { libc::kill(pid, 0) } != 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the watching kubectl ({pid}) was stopped with the command");

    // A failing command reports its code and its stderr.
    let (lines, done) = run_collect("kubectl get nodes --fail", &env, None).await;
    assert_eq!(done.code, Some(3));
    assert!(lines.contains(&"kubectl: failed".to_string()), "{lines:?}");
}

/// What `!` shows is what runs, to the byte; the password is never in the command's text but
/// in its environment, so a password full of shell syntax is sent as it is and runs nothing; and
/// `mqlab` lines run this mqlab with the app's endpoints.
#[tokio::test]
async fn what_runs_is_what_is_shown_and_secrets_come_through_the_environment() {
    let course = Course::embedded().unwrap();
    let l3 = &course.lessons[2];
    let dir = tempfile::tempdir().unwrap();
    // A fake curl that prints each argument on a line of its own.
    let curl_bin = dir.path().join("curl");
    std::fs::write(&curl_bin, "#!/bin/sh\nfor a in \"$@\"; do printf 'arg:%s\\n' \"$a\"; done\n").unwrap();
    std::fs::set_permissions(&curl_bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let marker = dir.path().join("INJECTED");
    for password in [
        "S3cretPass".to_string(),
        format!(";touch {};", marker.display()),
        format!("$(touch {})", marker.display()),
        format!("`touch {}`", marker.display()),
        format!("a' ; touch {} ; '", marker.display()),
        format!("a\" ; touch {} ; \"", marker.display()),
        format!("x\\ | touch {} & y !", marker.display()),
        "with spaces and !bang".to_string(),
    ] {
        let encoded: String = url::form_urlencoded::byte_serialize(password.as_bytes()).collect::<String>().replace('+', "%20");
        let cfg = config(Track::K3s, &format!("amqp://admin:{encoded}@localhost:5672//"));
        let curl = l3.runnable(Track::K3s, &cfg).into_iter().find(|c| c.command.starts_with("curl")).unwrap();
        assert!(!curl.command.contains(&password) && !curl.command.contains(&encoded), "{}", curl.command);
        assert!(curl.command.contains("\"$MQLAB_MGMT_USER:$MQLAB_MGMT_PASSWORD\""), "{}", curl.command);
        let env = env_with_path(&cfg, dir.path());
        let (lines, done) = run_collect(&curl.command, &env, None).await;
        assert_eq!(done.code, Some(0), "{lines:?}");
        assert!(lines.contains(&format!("arg:admin:{password}")), "{password:?} arrived changed: {lines:?}");
        assert!(!marker.exists(), "{password:?} ran a command");
    }
    let cfg = config(Track::K3s, "amqp://admin:S3cretPass@localhost:5672//");
    // Every runnable command is one the lesson shows (nothing from anywhere else).
    for l in &course.lessons {
        for c in l.runnable(Track::K3s, &cfg).into_iter().chain(l.runnable(Track::Local, &cfg)) {
            assert!(
                l.commands_with(Track::K3s, &cfg).contains(&c.command) || l.commands_with(Track::Local, &cfg).contains(&c.command),
                "{c:?}"
            );
            assert!(!c.command.contains("S3cretPass"), "{c:?}");
        }
    }
    // (In the app the running mqlab's own folder comes first on PATH; here that is the test's.)
    let env = env_with_path(&cfg, Path::new(env!("CARGO_BIN_EXE_mqlab")).parent().unwrap());
    let (lines, done) = run_collect("mqlab --version && echo \"$MQLAB_BROKER_URL\"", &env, None).await;
    assert_eq!(done.code, Some(0), "{lines:?}");
    assert!(lines[0].starts_with("mqlab "), "{lines:?}");
    // Output is masked like everything on screen.
    assert!(lines[1].starts_with("amqp://admin:*") && !lines[1].contains("S3cretPass"), "{lines:?}");
}
