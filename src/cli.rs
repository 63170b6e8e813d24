//! Command line: the headless subcommands share their code paths with the terminal UI.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::builder::TypedValueParser;
use clap::{Parser, Subcommand};
use serde_json::{Map, Value, json};

use crate::celery::backend::ResultMeta;
use crate::celery::client::{self, Client};
use crate::celery::protocol::{TaskMessage, TaskState};
use crate::celery::tasks::Registry;
use crate::celery::worker::{self, StopMode, WorkerOptions};
use crate::config::{Config, Overrides, mask_url};
use crate::lessons::Course;
use crate::lessons::export;
use crate::lessons::progress::{ExperimentKind, Store};
use crate::probes::{self, Probes, Status};
use anyhow::Context;

/// The version, and what this build speaks.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (Celery message protocol v2 and v1, Redis result backend; AMQP 0-9-1 via lapin 4; TLS: rustls with ring; \
     Kubernetes API 1.37 via kube 5; lessons embedded)"
);

#[derive(Debug, Parser)]
#[command(name = "mqlab", version = VERSION, about = "Learn message queues by doing: RabbitMQ, Redis and Celery, live.")]
pub struct Cli {
    #[command(flatten)]
    pub over: Overrides,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Celery-compatible worker (tasks.hello, tasks.add, tasks.divide, ...)
    Worker(WorkerArgs),
    /// Send a task the way `task.delay()` does, and optionally wait for its result
    Submit(SubmitArgs),
    /// Run the lessons' checks and report (exit 0 only when every check that ran passed)
    Check(CheckArgs),
    /// Show progress: checks, checklist, experiments, notes; tick items and keep notes
    Progress(ProgressArgs),
    /// Run a lesson's solution: the lesson's own commands, each shown before it runs (your Python
    /// worker in the background, the bursts, the kill and the restart), then its checks
    Solve(SolveArgs),
    /// Clear all progress, or one lesson's (asks first)
    Reset(ResetArgs),
    /// The end-of-course quiz, from the curriculum's own questions: answer with a letter; the
    /// answers and the score go into LEARNINGS.md
    Quiz(QuizArgs),
    /// A lesson's predictions: answer one before its experiment (`--answer ID=NUMBER`), see each
    /// beside what the experiment then showed
    Predict(PredictArgs),
    /// Write LEARNINGS.md from what you did
    Export(ExportArgs),
    /// Private RabbitMQ and Redis on this machine, for the local track
    Sandbox(SandboxArgs),
    /// Forward the cluster's RabbitMQ (AMQP 5672, management 15672) and Redis (6379) to
    /// 127.0.0.1, as `kubectl port-forward svc/...` does, kept up across pod restarts, until
    /// Ctrl-C; a local port already taken moves to the next free one, which mqlab then uses
    Forward,
    /// Write the curriculum's Python project (celery_app.py, submit_task.py, requirements.txt,
    /// .gitignore) filled in with your broker and backend; existing files are never overwritten
    Init(InitArgs),
    /// Print shell completions: mqlab completions bash > ~/.local/share/bash-completion/completions/mqlab
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): mqlab man > mqlab.1 && man ./mqlab.1
    Man,
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The folder (created if needed; default: the project folder, ~/rabbitmq-celery-learning,
    /// or `project_dir` in the config file / MQLAB_PROJECT_DIR)
    pub dir: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    #[command(subcommand)]
    pub action: SandboxAction,
}

#[derive(Debug, Subcommand)]
pub enum SandboxAction {
    /// Start them (on ports 5672, 15672, 6379 when free) and use them from now on
    Up {
        #[arg(long)]
        json: bool,
    },
    /// Stop them
    Down,
    /// Report their health
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Only the checks of this lesson (1-11)
    #[arg(short, long, conflicts_with = "all")]
    pub lesson: Option<u32>,
    /// Every check of every lesson (the default)
    #[arg(short, long)]
    pub all: bool,
    /// Only these checks (see --list); may be repeated
    #[arg(long = "id", value_name = "CHECK", conflicts_with_all = ["lesson", "all"])]
    pub ids: Vec<String>,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
    /// List the checks and exit
    #[arg(long)]
    pub list: bool,
    /// Re-run every earlier lesson's checks (those before the lesson you are on) and show, per
    /// check, when it was earned and what it sees now
    #[arg(long, conflicts_with_all = ["lesson", "all", "ids"])]
    pub previous: bool,
    /// With each check, the exact call it made (HTTP path, AMQP operation, Redis command,
    /// host:port)
    #[arg(short, long)]
    pub verbose: bool,
    /// Before you start: Python, the cluster tools and the VM's memory, who holds the ports, the
    /// Celery in your project's venv
    #[arg(long, conflicts_with_all = ["lesson", "all", "ids"])]
    pub preflight: bool,
}

#[derive(Debug, clap::Args)]
pub struct ProgressArgs {
    /// Tick a checklist item by hand
    #[arg(long, value_name = "ITEM")]
    pub tick: Vec<String>,
    /// Untick a checklist item
    #[arg(long, value_name = "ITEM")]
    pub untick: Vec<String>,
    /// Set the note of a lesson: --note 3 "text" (empty text removes it)
    #[arg(long, num_args = 2, value_names = ["LESSON", "TEXT"])]
    pub note: Vec<String>,
    /// Add a line to the note of a lesson: --add-note 3 "text"
    #[arg(long, num_args = 2, value_names = ["LESSON", "TEXT"])]
    pub add_note: Vec<String>,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    /// Do not ask
    #[arg(short, long)]
    pub yes: bool,
    /// Only this lesson: its earned checks, experiments, note and ticks, and what its solution
    /// left running or made on the broker (the queues it declared); other lessons keep theirs
    #[arg(short, long)]
    pub lesson: Option<u32>,
}

#[derive(Debug, clap::Args)]
pub struct QuizArgs {
    /// Answer without being asked: `--answer 1=b` (question 1, choice b); may be repeated
    #[arg(long, value_name = "N=LETTER")]
    pub answer: Vec<String>,
    /// Only show the score and your answers so far
    #[arg(long)]
    pub score: bool,
}

#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// The lesson (default: the one you are on)
    #[arg(short, long)]
    pub lesson: Option<u32>,
    /// Your prediction: `--answer ready_peak=12`; may be repeated
    #[arg(long, value_name = "ID=NUMBER")]
    pub answer: Vec<String>,
    /// As JSON: each prediction with your answer and what was observed
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct SolveArgs {
    /// The lesson (1-11)
    #[arg(required_unless_present = "stop")]
    pub lesson: Option<u32>,
    /// Stop the programs solutions left running in the background (the Python worker, the
    /// port-forwards), and nothing else
    #[arg(long, conflicts_with_all = ["list", "track"])]
    pub stop: bool,
    /// The track whose solution runs (default: yours)
    #[arg(long, value_enum)]
    pub track: Option<crate::config::Track>,
    /// Show the steps and exit, running nothing
    #[arg(long)]
    pub list: bool,
    /// With each failed check, the exact call it made
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Where to write (default: LEARNINGS.md in the project folder, ~/rabbitmq-celery-learning;
    /// - for stdout)
    #[arg(short, long)]
    pub output: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Tasks run at the same time (1-10000)
    #[arg(short = 'c', long, default_value_t = worker::default_concurrency(), value_parser = clap::value_parser!(u16).range(1..=10_000).map(|v| v as usize))]
    pub concurrency: usize,
    /// Messages reserved per slot (prefetch = concurrency × multiplier; 0 = unlimited)
    #[arg(long, default_value_t = 4)]
    pub prefetch_multiplier: u16,
    /// Ack when a task starts (Celery's default) instead of after its result is stored
    #[arg(long)]
    pub acks_early: bool,
    /// Queue to consume from (several: a,b)
    #[arg(short = 'Q', long, value_parser = queue_list)]
    pub queue: Option<String>,
    /// Node name
    #[arg(short = 'n', long)]
    pub hostname: Option<String>,
    /// How long tasks.hello works, in seconds (0-3600)
    #[arg(long, value_parser = seconds(3600.0))]
    pub hello_seconds: Option<f64>,
    /// Do not store the STARTED state (Celery's task_track_started=False)
    #[arg(long)]
    pub no_track_started: bool,
    /// Log level: debug, info, warning, error
    #[arg(short = 'l', long, default_value = "info")]
    pub loglevel: String,
    /// Send task events (on by default, as `celery worker -E`)
    #[arg(short = 'E', long = "events", conflicts_with = "no_events")]
    pub events: bool,
    /// Send no task events (worker heartbeats still go out, as in Celery)
    #[arg(long)]
    pub no_events: bool,
    /// Keep the revoked task ids in this file across restarts (as `celery worker --statedb`)
    #[arg(short = 'S', long, value_name = "FILE")]
    pub statedb: Option<std::path::PathBuf>,
    /// Store each task's name, arguments, worker, retries and queue with its states (Celery's
    /// `result_extended = True`)
    #[arg(long)]
    pub result_extended: bool,
    /// Declare the queues as priority queues with this many levels, 1-255 (Celery's
    /// `task_queue_max_priority`; default: `queue_max_priority` in the config file)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub max_priority: Option<u8>,
}

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// Task name, e.g. tasks.add
    #[arg(value_parser = task_name)]
    pub task: String,
    /// Positional arguments; each is read as JSON when it parses (42, 1.5, true, [1,2]) and as a
    /// string otherwise (World)
    pub args: Vec<String>,
    /// Keyword arguments as a JSON object
    #[arg(long, value_name = "JSON")]
    pub kwargs: Option<String>,
    /// Send this many copies, up to 1,000,000 (reports the publish rate)
    #[arg(short = 'n', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000).map(|v| v as usize))]
    pub count: usize,
    /// Wait for the results, printing each state seen
    #[arg(short, long)]
    pub wait: bool,
    /// Seconds to wait for results (with --wait; at most a week)
    #[arg(long, default_value_t = 10.0, value_parser = seconds(604_800.0))]
    pub timeout: f64,
    /// Machine-readable output: one JSON object per line
    #[arg(long)]
    pub json: bool,
    /// Queue to send to
    #[arg(short = 'Q', long, value_parser = queue_name)]
    pub queue: Option<String>,
    /// Discard the task if it has not started within this many seconds (at most a year)
    #[arg(long, value_parser = seconds(31_536_000.0))]
    pub expires: Option<f64>,
    /// Run the task this many seconds from now (at most a year)
    #[arg(long, value_parser = seconds(31_536_000.0))]
    pub countdown: Option<f64>,
    /// Message priority, 0-255 (honoured by a priority queue: higher runs first)
    #[arg(long, value_name = "N")]
    pub priority: Option<u8>,
    /// Declare the queue as a priority queue with this many levels, 1-255, as the worker does
    /// (default: `queue_max_priority` in the config file)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub max_priority: Option<u8>,
}

/// A task name: not empty (a message with no name can only be refused by the worker).
fn task_name(raw: &str) -> Result<String, String> {
    if raw.trim().is_empty() {
        return Err("a task name cannot be empty: give one such as tasks.add".into());
    }
    Ok(raw.to_string())
}

fn queue_name(raw: &str) -> Result<String, String> {
    crate::config::check_queue_name(raw)?;
    Ok(raw.to_string())
}

fn queue_list(raw: &str) -> Result<String, String> {
    crate::config::check_queue_list(raw)?;
    Ok(raw.to_string())
}

/// A number of seconds: finite, not negative, at most `max` (refused by the parser, so nothing
/// is sent with a duration that cannot be represented).
fn seconds(max: f64) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    move |raw: &str| {
        let v: f64 = raw.trim().parse().map_err(|_| format!("{raw:?} is not a number of seconds"))?;
        if !v.is_finite() || v < 0.0 || v > max {
            return Err(format!("{raw} is out of range: give a number of seconds from 0 to {max}"));
        }
        Ok(v)
    }
}

/// Exit codes: 0 success, 1 error, 2 timed out waiting, 3 a task failed, 64 a usage error (an
/// unknown flag, a missing or malformed argument: sysexits' EX_USAGE; clap's own 2 would read
/// as a timeout).
pub const EXIT_USAGE: i32 = 64;

pub fn main() -> i32 {
    // `mqlab progress | head`: a reader that stops early ends the output quietly, as for any
    // Unix tool (exit status 141, 128 + SIGPIPE), not with a panic report.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p.downcast_ref::<String>().map(String::as_str).or_else(|| p.downcast_ref::<&str>().copied()).unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info)
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version asked for are answers, not errors.
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    crate::tls::ensure_provider();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let code = match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            1
        }
    };
    // A computation a time limit gave up on still runs on its thread (its result is discarded):
    // the process does not wait for it to end.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

pub use crate::redact::one_line;

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let mut cfg = Config::load(&cli.over)?;
    // The track chosen in the app (kept with the progress) applies unless a flag, the
    // environment or the config file says otherwise.
    if !cfg.track_explicit
        && let Ok(p) = Store::new(&cfg.data_dir).load()
        && let Some(t) = p.track
    {
        cfg.track = t;
    }
    let context_explicit = cli.over.context.is_some() || std::env::var_os("MQLAB_KUBE_CONTEXT").is_some();
    match cli.command {
        Some(Command::Worker(args)) => run_worker(&cfg, args).await,
        Some(Command::Submit(args)) => run_submit(&cfg, args).await,
        Some(Command::Check(args)) => run_check(&cfg, context_explicit, args).await,
        Some(Command::Progress(args)) => run_progress(&cfg, args),
        Some(Command::Solve(args)) => run_solve(&cfg, &cli.over, args).await,
        Some(Command::Quiz(args)) => run_quiz(&cfg, args),
        Some(Command::Predict(args)) => run_predict(&cfg, args),
        Some(Command::Reset(args)) => run_reset(&cfg, args).await,
        Some(Command::Export(args)) => run_export(&cfg, args),
        Some(Command::Sandbox(args)) => run_sandbox(&cfg, args).await,
        Some(Command::Forward) => run_forward(&cfg, context_explicit).await,
        Some(Command::Init(args)) => run_init(&cfg, args),
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "mqlab", &mut std::io::stdout());
            Ok(0)
        }
        Some(Command::Man) => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(0)
        }
        None => {
            use std::io::IsTerminal;
            if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
                eprintln!("mqlab's interactive lessons need a terminal; for scripts use a command (see `mqlab --help`)");
                return Ok(1);
            }
            crate::tui::run(cfg, cli.over.clone(), context_explicit).await?;
            Ok(0)
        }
    }
}

fn banner(opts: &WorkerOptions, backend: &str) -> String {
    let tasks: Vec<String> = Registry::builtin().names().iter().map(|n| format!("  . {n}")).collect();
    let acks = if opts.acks_late { "late (after the result is stored)" } else { "early (when the task starts)" };
    format!(
        " -------------- {host} v{ver} (mqlab)\n\
         --- ***** ----- \n\
         -- ******* ---- {os}\n\
         - *** --- * --- \n\
         - ** ---------- [config]\n\
         - ** ---------- .> app:         mqlab\n\
         - ** ---------- .> transport:   {transport}\n\
         - ** ---------- .> results:     {backend}\n\
         - *** --- * --- .> concurrency: {conc} (async slots)\n\
         -- ******* ---- .> prefetch:    {prefetch}\n\
         --- ***** ----- .> acks:        {acks}\n\
         \x20-------------- .> task events: {events}\n\
         \x20-------------- [queues]\n\
         \x20               .> {queue:<16} exchange={queue}(direct) key={queue}\n\n\
         [tasks]\n{tasks}\n",
        host = opts.hostname,
        ver = env!("CARGO_PKG_VERSION"),
        os = std::env::consts::OS,
        transport = mask_url(&opts.broker_url),
        backend = mask_url(backend),
        conc = opts.concurrency,
        prefetch = opts.prefetch_count(),
        queue = opts.queue,
        tasks = tasks.join("\n"),
        events = if opts.task_events { "ON" } else { "OFF" },
    )
}

async fn run_worker(cfg: &Config, args: WorkerArgs) -> anyhow::Result<i32> {
    let level = match args.loglevel.to_ascii_lowercase().as_str() {
        "warning" | "warn" => "warn".to_string(),
        l @ ("debug" | "info" | "error" | "trace") => l.to_string(),
        other => anyhow::bail!("unknown log level {other:?} (use debug, info, warning or error)"),
    };
    crate::logging::init_stderr(&level);
    if args.concurrency == 0 {
        anyhow::bail!("--concurrency must be at least 1");
    }
    let mut opts = WorkerOptions::new(&cfg.broker_url, Some(cfg.result_backend.clone()));
    opts.concurrency = args.concurrency;
    opts.prefetch_multiplier = args.prefetch_multiplier;
    opts.acks_late = !args.acks_early;
    opts.queue = args.queue.unwrap_or_else(|| cfg.queue.clone());
    if let Some(h) = args.hostname {
        opts.hostname = if h.contains('@') { h } else { format!("celery@{h}") };
    }
    opts.track_started = !args.no_track_started;
    opts.task_events = !args.no_events;
    opts.statedb = args.statedb.clone();
    opts.result_extended = args.result_extended;
    opts.result_expires = cfg.result_expires;
    opts.queue_args = cfg.queue_args(args.max_priority);
    let hello = args.hello_seconds.unwrap_or(cfg.hello_seconds);
    if !(0.0..=3600.0).contains(&hello) {
        anyhow::bail!("--hello-seconds must be between 0 and 3600");
    }
    opts.settings.hello_delay = Duration::from_secs_f64(hello);
    eprintln!("{}", banner(&opts, &cfg.result_backend));

    let (conc, acks_late) = (opts.concurrency, opts.acks_late);
    let started = Instant::now();
    let mut handle = worker::spawn(opts, None);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut signals = 0;
    loop {
        tokio::select! {
            r = handle.wait() => {
                let st = &handle.stats;
                let (ok, failed) = (st.succeeded.load(std::sync::atomic::Ordering::Relaxed), st.failed.load(std::sync::atomic::Ordering::Relaxed));
                if ok + failed > 0 {
                    record(
                        cfg,
                        ExperimentKind::WorkerRun,
                        format!("Ran mqlab worker at concurrency {conc} ({} acks) for {:.0} s: {ok} succeeded, {failed} failed", if acks_late { "late" } else { "early" }, started.elapsed().as_secs_f64()),
                        json!({"concurrency": conc, "acks_late": acks_late, "succeeded": ok, "failed": failed, "seconds": started.elapsed().as_secs_f64()}),
                    );
                }
                return r.map(|_| 0);
            }
            _ = tokio::signal::ctrl_c() => signals += 1,
            _ = term.recv() => signals += 1,
        }
        let mode = if signals == 1 { StopMode::Warm } else { StopMode::Cold };
        eprintln!(
            "\nworker: {} shutdown (MainProcess){}",
            if mode == StopMode::Warm { "Warm" } else { "Cold" },
            if mode == StopMode::Warm { "; press Ctrl-C again for a cold shutdown" } else { "" }
        );
        handle.stop(mode);
    }
}

fn parse_arg(raw: &str) -> Value {
    crate::celery::pyjson::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

async fn run_submit(cfg: &Config, args: SubmitArgs) -> anyhow::Result<i32> {
    if args.count == 0 {
        anyhow::bail!("--count must be at least 1");
    }
    let positional: Vec<Value> = args.args.iter().map(|a| parse_arg(a)).collect();
    let kwargs: Map<String, Value> = match &args.kwargs {
        None => Map::new(),
        Some(raw) => match crate::celery::pyjson::from_str(raw) {
            Ok(Value::Object(m)) => m,
            Ok(_) => anyhow::bail!("--kwargs must be a JSON object, like '{{\"y\": 2}}'"),
            Err(e) => anyhow::bail!("--kwargs is not valid JSON: {e}"),
        },
    };
    let queue = args.queue.clone().unwrap_or_else(|| cfg.queue.clone());
    let msgs: Vec<TaskMessage> = (0..args.count)
        .map(|_| {
            let mut m = TaskMessage::new(args.task.clone(), positional.clone(), kwargs.clone());
            let now = chrono::Utc::now();
            if let Some(c) = args.countdown {
                m.eta = Some(now + chrono::Duration::milliseconds((c * 1000.0) as i64));
            }
            if let Some(e) = args.expires {
                m.expires = Some(now + chrono::Duration::milliseconds((e * 1000.0) as i64));
            }
            if let Some(p) = args.priority {
                m.priority = p;
            }
            m
        })
        .collect();
    // The ids are noted in Redis (so checks can tell mqlab's tasks from the learner's); without
    // --wait a Redis that does not answer does not stop the send.
    let queue_args = cfg.queue_args(args.max_priority);
    let client = match Client::connect_with_args(
        &cfg.broker_url,
        Some(cfg.result_backend.as_str()),
        &queue,
        cfg.result_expires,
        &queue_args,
    )
    .await
    {
        Ok(c) => c.log_sent_ids(crate::probes::learner::SENT_LOG_KEY),
        Err(e) if args.wait => return Err(e),
        Err(e) => {
            tracing::debug!("sending without noting the ids in Redis: {e:#}");
            Client::connect_with_args(&cfg.broker_url, None, &queue, cfg.result_expires, &queue_args).await?
        }
    };
    let mut watcher = if args.wait { Some(client.watch(&msgs).await?) } else { None };
    let started = Instant::now();
    client.publish(&msgs).await?;
    let publish_secs = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    let single = args.count == 1;
    if single {
        let m = &msgs[0];
        if args.json {
            writeln!(
                out,
                "{}",
                json!({"event": "sent", "task_id": m.id, "task": m.task, "args": m.argsrepr, "kwargs": m.kwargsrepr, "queue": queue, "state": "PENDING", "at": now_iso()})
            )?;
        } else {
            writeln!(
                out,
                "Sent {}[{}] {}{} to queue {queue:?}",
                m.task,
                m.id,
                m.argsrepr,
                if m.kwargs.is_empty() { String::new() } else { format!(" {}", m.kwargsrepr) }
            )?;
            if args.wait {
                writeln!(out, "  {:<8} {}", "PENDING", now_clock())?;
            }
        }
    } else {
        let rate = args.count as f64 / publish_secs.max(1e-9);
        if args.json {
            writeln!(out, "{}", json!({"event": "published", "count": args.count, "seconds": publish_secs, "rate": rate, "queue": queue}))?;
        } else {
            writeln!(out, "Published {} × {} in {:.3}s ({:.0} tasks/s) to queue {queue:?}", args.count, args.task, publish_secs, rate)?;
        }
    }
    out.flush()?;
    let Some(watcher) = watcher.as_mut() else {
        client.close().await;
        record(
            cfg,
            ExperimentKind::TasksSubmitted,
            format!(
                "Sent {} × {}{} without waiting ({:.0} tasks/s published)",
                args.count,
                args.task,
                msgs[0].argsrepr,
                args.count as f64 / publish_secs.max(1e-9)
            ),
            json!({"task": args.task, "count": args.count, "publish_seconds": publish_secs}),
        );
        return Ok(0);
    };
    let mut finals: std::collections::HashMap<String, ResultMeta> = std::collections::HashMap::new();
    let json_out = args.json;
    let done = client::follow(watcher, Some(Duration::from_secs_f64(args.timeout.max(0.0))), |meta| {
        let mut out = std::io::stdout().lock();
        if single {
            let _ = print_state(&mut out, meta, json_out);
        }
        if meta.status.is_ready() {
            finals.insert(meta.task_id.clone(), meta.clone());
        }
    })
    .await?;
    let total = started.elapsed().as_secs_f64();
    let failures = finals.values().filter(|m| m.status != TaskState::Success).count();
    // A burst that completed on the one worker on the broker is a timing at that worker's
    // concurrency (whichever worker it is: yours in Python answers `stats` as mqlab's does).
    let mut timed_at: Option<(String, u64)> = None;
    if !single && done && finals.len() == args.count {
        let replies = client.broadcast_gather("stats", json!({}), Duration::from_secs(1)).await.unwrap_or_default();
        if let [(host, stats)] = replies.as_slice()
            && let Some(conc) = stats.pointer("/pool/max-concurrency").and_then(Value::as_u64)
        {
            timed_at = Some((host.clone(), conc));
        }
    }
    client.close().await;
    let first_exc = finals.values().find_map(|m| m.exception_text());
    if let Some((host, conc)) = &timed_at {
        let ok = finals.len() - failures;
        record(
            cfg,
            ExperimentKind::Concurrency,
            format!(
                "Burst of {} × {} at concurrency {conc} on {host} (the only worker on the broker): {ok} SUCCESS in {total:.1} s ({:.0} tasks/s), timed by mqlab submit",
                args.count,
                args.task,
                args.count as f64 / total.max(1e-9)
            ),
            json!({"task": args.task, "count": args.count, "succeeded": ok, "failed": failures, "concurrency": conc, "seconds": total, "worker": host, "observed": "submit"}),
        );
    } else {
        record(
            cfg,
            ExperimentKind::TasksSubmitted,
            if single {
                let m = finals.values().next();
                let outcome = match m {
                    Some(m) if m.status == TaskState::Success => format!("SUCCESS {}", crate::celery::pyrepr::repr(&m.result)),
                    Some(m) => format!("{} ({})", m.status, m.exception_text().unwrap_or_default()),
                    None => "no result in time".to_string(),
                };
                format!("Sent {}{}: {outcome} after {:.0} ms", args.task, msgs[0].argsrepr, total * 1000.0)
            } else {
                format!(
                    "Sent {} × {}{}: {} SUCCESS, {failures} FAILURE{}, {} unfinished, in {total:.2} s ({:.0} tasks/s)",
                    args.count,
                    args.task,
                    msgs[0].argsrepr,
                    finals.len() - failures,
                    first_exc.as_ref().map(|e| format!(" ({e})")).unwrap_or_default(),
                    args.count - finals.len(),
                    finals.len() as f64 / total.max(1e-9)
                )
            },
            json!({"task": args.task, "count": args.count, "succeeded": finals.len() - failures, "failed": failures, "seconds": total, "exception": first_exc}),
        );
    }
    if !single {
        let ok = finals.len() - failures;
        let missing = args.count - finals.len();
        if json_out {
            writeln!(
                out,
                "{}",
                json!({"event": "completed", "count": args.count, "succeeded": ok, "failed": failures, "missing": missing, "seconds": total, "rate": finals.len() as f64 / total})
            )?;
        } else {
            writeln!(
                out,
                "Completed {}/{}: {ok} SUCCESS, {failures} FAILURE in {total:.3}s ({:.0} tasks/s)",
                finals.len(),
                args.count,
                finals.len() as f64 / total
            )?;
        }
    }
    if !done {
        let msg = format!(
            "timed out after {}s waiting for {} result(s); is a worker consuming queue {queue:?}? (`mqlab worker` or `celery -A celery_app worker`)",
            args.timeout,
            watcher.pending()
        );
        if json_out {
            writeln!(out, "{}", json!({"event": "timeout", "pending": watcher.pending(), "message": msg}))?;
        } else {
            eprintln!("{msg}");
        }
        return Ok(2);
    }
    Ok(if failures > 0 { 3 } else { 0 })
}

fn now_iso() -> String {
    crate::celery::protocol::iso(chrono::Utc::now())
}

fn now_clock() -> String {
    chrono::Local::now().format("%H:%M:%S%.3f").to_string()
}

fn print_state(out: &mut impl Write, meta: &ResultMeta, json_out: bool) -> std::io::Result<()> {
    if json_out {
        let mut v = json!({"event": "state", "task_id": meta.task_id, "state": meta.status, "at": now_iso()});
        match meta.status {
            TaskState::Success => v["result"] = meta.result.clone(),
            TaskState::Started => v["worker"] = meta.result.clone(),
            _ => {
                if let Some(e) = meta.exception_text() {
                    v["exception"] = json!(e);
                    v["traceback"] = json!(meta.traceback);
                }
            }
        }
        return writeln!(out, "{v}");
    }
    let detail = match meta.status {
        TaskState::Started => format!(
            "worker {} pid {}",
            meta.result.get("hostname").and_then(Value::as_str).unwrap_or("?"),
            meta.result.get("pid").map(|p| p.to_string()).unwrap_or_else(|| "?".into())
        ),
        TaskState::Success => format!("result: {}", crate::celery::pyrepr::repr(&meta.result)),
        _ => meta.exception_text().map(|e| format!("raised {e}")).unwrap_or_default(),
    };
    writeln!(out, "  {:<8} {}  {detail}", meta.status.as_str(), now_clock())?;
    if meta.status == TaskState::Failure
        && let Some(tb) = &meta.traceback
    {
        for line in tb.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    Ok(())
}

fn store(cfg: &Config) -> Store {
    Store::new(&cfg.data_dir)
}

/// Records an experiment; a failure to write progress is reported, never fatal to the command.
fn record(cfg: &Config, kind: ExperimentKind, summary: String, figures: Value) {
    let add = |p: &mut crate::lessons::progress::Progress| {
        let mut e = crate::lessons::progress::experiment(kind, summary, figures);
        // The lesson the learner is on: `mqlab reset --lesson N` clears what was done there.
        e.lesson = Some(p.current_lesson);
        p.experiments.push(e);
    };
    if let Err(e) = store(cfg).update(add) {
        eprintln!("warning: could not record this in your progress: {}", one_line(&e));
    }
}

async fn run_check(cfg: &Config, context_explicit: bool, args: CheckArgs) -> anyhow::Result<i32> {
    if args.list {
        for c in probes::CHECKS {
            println!("{:<20} {}", c.id, c.title);
        }
        return Ok(0);
    }
    let course = Course::load()?;
    let track = cfg.track;
    for id in &args.ids {
        if probes::info(id).is_none() {
            anyhow::bail!("no check {id:?} (mqlab check --list shows them)");
        }
    }
    let previous: Vec<u32> = if args.previous {
        let upto = store(cfg).load_or_fresh().0.current_lesson;
        course.lessons.iter().map(|l| l.step).filter(|s| *s < upto).collect()
    } else {
        vec![]
    };
    if args.previous && previous.is_empty() {
        println!("You are on lesson 1: there is no earlier lesson to re-check (mqlab progress says where you are).");
        return Ok(0);
    }
    let ids: Vec<String> = match args.lesson {
        _ if args.preflight => probes::preflight::ids(track).into_iter().map(str::to_string).collect(),
        _ if !args.ids.is_empty() => args.ids.clone(),
        _ if args.previous => {
            let mut v: Vec<String> = vec![];
            for l in course.lessons.iter().filter(|l| previous.contains(&l.step)) {
                for c in l.checks(track) {
                    if !v.contains(c) {
                        v.push(c.clone());
                    }
                }
            }
            v
        }
        Some(n) => {
            let l = course.lesson(n).with_context(|| format!("there is no lesson {n} (lessons 1-{})", course.lessons.len()))?;
            l.checks(track).iter().chain(&l.diagnose).cloned().collect()
        }
        None => course.all_checks(track),
    };
    // Diagnoses (a state that spoils an experiment) are said, never counted as a failure.
    let diagnoses: Vec<String> = match args.lesson {
        Some(n) if !args.previous && !args.preflight => course.lesson(n).map(|l| l.diagnose.clone()).unwrap_or_default(),
        _ => vec![],
    };
    // The lessons whose checks these passes earn: the one asked for, the earlier ones, or every
    // lesson that lists them.
    let scope: Vec<u32> = match args.lesson {
        _ if args.previous => previous.clone(),
        Some(n) => vec![n],
        None => vec![],
    };
    let mut probes = Probes::new(cfg.clone());
    probes.context_explicit = context_explicit;
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let results = probes.run_many(&refs).await;
    let saved = store(cfg).update(|p| {
        // A track given on purpose is kept as the learner's choice.
        if cfg.track_explicit {
            p.track = Some(track);
        }
        let newly = p.record_checks_in(&results, &course, track, &scope);
        (newly, p.clone())
    });
    let (newly, progress) = match saved {
        Ok(n) => n,
        Err(e) => {
            eprintln!("warning: could not save progress: {}", one_line(&e));
            (vec![], store(cfg).load_or_fresh().0)
        }
    };
    let (diagnosed, results): (Vec<probes::CheckResult>, Vec<probes::CheckResult>) =
        results.into_iter().partition(|r| diagnoses.contains(&r.id));
    let failed = results.iter().filter(|r| r.status == Status::Fail).count();
    if args.json {
        let earned: Value = if args.previous {
            json!(previous.iter().map(|n| (n.to_string(), json!(progress.earned.get(n)))).collect::<Map<String, Value>>())
        } else {
            Value::Null
        };
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"track": track.as_str(), "results": results, "diagnoses": diagnosed, "newly_ticked": newly, "earned": earned})
            )?
        );
    } else if args.previous {
        println!("Earlier lessons, earned and now (track {})", track.as_str());
        for l in course.lessons.iter().filter(|l| previous.contains(&l.step)) {
            println!("Lesson {} · {} {}", l.step, l.title_for(track), l.mark(track, &progress));
            if l.checks(track).is_empty() {
                println!("  no checks: it is read, not proved");
            }
            for id in l.checks(track) {
                let Some(now) = results.iter().find(|r| &r.id == id) else { continue };
                let earned = match progress.earned_for(l.step, id, track) {
                    Some(e) => format!("earned {}", e.at.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M")),
                    None => "not earned".to_string(),
                };
                println!("  {:<24} {earned} · now {} {}", id, now.status.mark(), now.detail);
                if args.verbose && !now.call.is_empty() {
                    println!("  {:<24} call: {}", "", now.call);
                }
            }
        }
        let passed = results.iter().filter(|r| r.status == Status::Pass).count();
        println!(
            "now: {passed} passed, {failed} failed (an earned check stays earned; run the lesson's solution or its steps to make it true again)"
        );
    } else {
        let scope = match args.lesson {
            _ if args.preflight => "Preflight".to_string(),
            _ if !args.ids.is_empty() => format!("Checks {}", args.ids.join(", ")),
            Some(n) => format!("Lesson {n} · {}", course.lesson(n).map(|l| l.title_for(track)).unwrap_or("")),
            None => "All lessons".to_string(),
        };
        println!("{scope} (track {})", track.as_str());
        if results.is_empty() {
            println!("  this lesson has no checks: it is read, not proved");
        }
        print_results(&results, args.verbose, cfg);
        for d in diagnosed.iter().filter(|d| d.status == Status::Fail) {
            println!("  ! {}  {}", d.id, d.detail);
            if let Some(h) = &d.hint {
                println!("    → {h}");
            }
        }
        let passed = results.iter().filter(|r| r.status == Status::Pass).count();
        let skipped = results.iter().filter(|r| r.status == Status::Skipped).count();
        println!("{passed} passed, {failed} failed, {skipped} skipped");
        for id in &newly {
            if let Some(item) = course.checklist().iter().find(|i| &i.id == id) {
                println!("  ticked: {}", item.text);
            }
        }
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

fn run_progress(cfg: &Config, args: ProgressArgs) -> anyhow::Result<i32> {
    let course = Course::load()?;
    let st = store(cfg);
    use crate::lessons::progress::Change;
    let mut changes = vec![];
    for id in &args.tick {
        course.checklist().iter().find(|i| &i.id == id).with_context(|| format!("no checklist item {id:?}"))?;
        changes.push(Change::Tick(id.clone()));
    }
    for id in &args.untick {
        course.checklist().iter().find(|i| &i.id == id).with_context(|| format!("no checklist item {id:?}"))?;
        changes.push(Change::Untick(id.clone()));
    }
    let step_of = |raw: &str| -> anyhow::Result<u32> {
        let step: u32 = raw.parse().map_err(|_| anyhow::anyhow!("a note takes a lesson number first, got {raw:?}"))?;
        if course.lesson(step).is_none() {
            anyhow::bail!("there is no lesson {step}");
        }
        Ok(step)
    };
    for pair in args.note.chunks(2) {
        changes.push(Change::Note { step: step_of(&pair[0])?, text: pair[1].clone() });
    }
    for pair in args.add_note.chunks(2) {
        changes.push(Change::AppendNote { step: step_of(&pair[0])?, text: pair[1].clone() });
    }
    // Read and changed under the store's lock, so a note written meanwhile elsewhere is kept.
    let p = if changes.is_empty() {
        let (p, warning) = st.load_or_fresh();
        if let Some(w) = warning {
            eprintln!("warning: {w}");
        }
        p
    } else {
        st.apply(&course, &changes)?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
        return Ok(0);
    }
    println!("Progress ({}; track {})", st.path().display(), p.track.unwrap_or(cfg.track).as_str());
    let track = p.track.unwrap_or(cfg.track);
    let mut p = p;
    p.migrate(&course);
    println!("\nLessons (you are on lesson {})", p.current_lesson);
    for l in &course.lessons {
        let todo = l.to_do(track, &p);
        let mark = l.mark(track, &p);
        let stars = "●".repeat(l.difficulty as usize) + &"○".repeat(3 - l.difficulty as usize);
        let rest = if todo.is_empty() { String::new() } else { format!(" — to do: {}", todo.join(", ")) };
        println!("  {mark} {:>2} {:<44} ~{:>2} min {stars}{rest}", l.step, l.title_for(track), l.minutes(track));
    }
    match course.next(track, &p) {
        Some((l, todo)) => println!(
            "Next: lesson {} · {} ({}): `mqlab check --lesson {}` checks it, `mqlab solve {}` runs its own commands",
            l.step,
            l.title_for(track),
            todo.join(", "),
            l.step,
            l.step
        ),
        None => println!("Next: every lesson is done. `mqlab export` writes LEARNINGS.md; the checklist below says what is ticked."),
    }
    println!("\nChecklist {}/{}", p.ticked(&course), course.checklist().len());
    for item in course.checklist() {
        let mark = match p.tick_for(item, track) {
            Some(t) if t.by == "hand" => "[x] (by hand)".to_string(),
            Some(_) => "[x]".to_string(),
            None => "[ ]".to_string(),
        };
        println!("  {mark:<14} {:<14} {}", item.id, item.text_for(track));
    }
    println!("\nChecks");
    if p.checks.is_empty() {
        println!("  none run yet: `mqlab check`");
    }
    for (id, r) in &p.checks {
        println!("  {} {:<20} {}  ({})", r.status.mark(), id, r.detail, r.at.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M"));
    }
    println!("\nExperiments");
    if p.experiments.is_empty() {
        println!("  none yet: `mqlab submit ... --wait` or the lab");
    }
    for e in &p.experiments {
        println!("  {}  {}", e.at.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M"), e.summary);
    }
    if !p.notes.is_empty() {
        println!("\nNotes");
        for (step, text) in &p.notes {
            let first = text.lines().next().unwrap_or("");
            println!("  lesson {step}: {first}{}", if text.lines().count() > 1 { " …" } else { "" });
        }
    }
    Ok(0)
}

async fn run_reset(cfg: &Config, args: ResetArgs) -> anyhow::Result<i32> {
    let st = store(cfg);
    let course = Course::load()?;
    let what = match args.lesson {
        Some(n) => {
            let l = course.lesson(n).with_context(|| format!("there is no lesson {n} (lessons 1-{})", course.lessons.len()))?;
            format!(
                "lesson {n} ({})'s earned checks, experiments, note and ticks, and stop what its solution left running",
                l.title_for(cfg.track)
            )
        }
        None => {
            format!("all progress, checklist ticks, notes and experiments in {}, and stop what solutions left running", st.path().display())
        }
    };
    if !args.yes {
        eprint!("Clear {what}? [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            eprintln!("Nothing was cleared.");
            return Ok(1);
        }
    }
    let undone = crate::lessons::solver::undo(cfg, args.lesson).await?;
    for line in &undone {
        eprintln!("  {line}");
    }
    match args.lesson {
        Some(n) => {
            let cleared = st.update(|p| p.reset_lesson(&course, n))?;
            if cleared.is_empty() {
                eprintln!("Lesson {n} had nothing recorded; it starts afresh.");
            } else {
                eprintln!("Lesson {n} cleared: {}. Other lessons keep theirs.", cleared.join(", "));
            }
        }
        None => {
            st.reset()?;
            eprintln!("Progress cleared.");
        }
    }
    Ok(0)
}

/// A choice letter (a, b, …) as an index among `n` choices.
fn choice(raw: &str, n: usize) -> Option<usize> {
    let t = raw.trim().to_ascii_lowercase();
    let c = t.chars().next()?;
    let i = if c.is_ascii_digit() { (c as usize).checked_sub('1' as usize)? } else { (c as usize).checked_sub('a' as usize)? };
    (t.chars().count() == 1 && i < n).then_some(i)
}

fn run_quiz(cfg: &Config, args: QuizArgs) -> anyhow::Result<i32> {
    use crate::lessons::progress::Change;
    let course = Course::load()?;
    let quiz = course.quiz();
    let st = store(cfg);
    let letters = |n: usize| (0..n).map(|i| ((b'a' + i as u8) as char).to_string()).collect::<Vec<_>>().join(", ");
    // Given answers are checked whole before any is kept: a bad one loses nothing.
    let mut given = vec![];
    for a in &args.answer {
        let (n, c) = a.split_once('=').with_context(|| format!("{a:?}: give an answer as N=LETTER, e.g. 1=b"))?;
        let n: usize = n
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=quiz.len()).contains(n))
            .with_context(|| format!("{a:?}: questions are 1-{}", quiz.len()))?;
        let q = quiz[n - 1];
        let c = choice(c, q.choices.len()).with_context(|| format!("{a:?}: question {n}'s choices are {}", letters(q.choices.len())))?;
        given.push(Change::QuizAnswer { n: n - 1, chosen: c });
    }
    let mut p = if given.is_empty() { st.load_or_fresh().0 } else { st.apply(&course, &given)? };
    if given.is_empty() && !args.score {
        use std::io::BufRead;
        let stdin = std::io::stdin();
        let mut lines = stdin.lock().lines();
        println!(
            "Quiz: {} questions from the curriculum. Answer with a letter; an empty line skips, Ctrl-D stops (what you answered is kept).",
            quiz.len()
        );
        'questions: for (n, q) in quiz.iter().enumerate() {
            println!("\n{}. {}", n + 1, q.q);
            for (i, c) in q.choices.iter().enumerate() {
                println!("   {}) {c}", (b'a' + i as u8) as char);
            }
            loop {
                print!("your answer: ");
                std::io::stdout().flush()?;
                let Some(line) = lines.next() else { break 'questions };
                let line = line?;
                if line.trim().is_empty() {
                    break;
                }
                match choice(&line, q.choices.len()) {
                    Some(c) => {
                        p = st.apply(&course, &[Change::QuizAnswer { n, chosen: c }])?;
                        if c == q.answer {
                            println!("✓ right. {}", q.why);
                        } else {
                            println!("✗ the answer is {}) {}. {}", (b'a' + q.answer as u8) as char, q.choices[q.answer], q.why);
                        }
                        break;
                    }
                    None => println!("  {:?} is not one of {}: try again (empty line skips)", line.trim(), letters(q.choices.len())),
                }
            }
        }
    }
    let right = p.quiz.values().filter(|a| a.correct).count();
    println!("\nScore: {right} of {} right ({} answered). `mqlab export` puts your answers in LEARNINGS.md.", quiz.len(), p.quiz.len());
    Ok(0)
}

fn run_predict(cfg: &Config, args: PredictArgs) -> anyhow::Result<i32> {
    use crate::lessons::progress::{Change, number};
    let course = Course::load()?;
    let st = store(cfg);
    let step = match args.lesson {
        Some(n) => n,
        None => st.load_or_fresh().0.current_lesson,
    };
    let lesson = course.lesson(step).with_context(|| format!("there is no lesson {step} (lessons 1-{})", course.lessons.len()))?;
    let ids = || lesson.predict.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", ");
    // Every answer is checked before any is kept: a bad one loses nothing.
    let mut given = vec![];
    for a in &args.answer {
        let (id, v) = a.split_once('=').with_context(|| format!("{a:?}: give a prediction as ID=NUMBER, e.g. ready_peak=12"))?;
        let id = id.trim();
        if !lesson.predict.iter().any(|p| p.id == id) {
            if lesson.predict.is_empty() {
                anyhow::bail!("lesson {step} asks for no prediction");
            }
            anyhow::bail!("{a:?}: lesson {step} asks for {}", ids());
        }
        let value: f64 =
            v.trim().parse().ok().filter(|v: &f64| v.is_finite()).with_context(|| format!("{a:?}: a prediction is a number"))?;
        given.push(Change::Predict { step, id: id.to_string(), value });
    }
    let p = if given.is_empty() { st.load_or_fresh().0 } else { st.apply(&course, &given)? };
    if args.json {
        let list: Vec<serde_json::Value> = lesson
            .predict
            .iter()
            .map(|q| {
                let o = p.outcome(step, q);
                serde_json::json!({
                    "id": q.id, "question": q.q, "unit": q.unit,
                    "predicted": o.as_ref().map(|o| o.predicted.value),
                    "observed": o.as_ref().and_then(|o| o.observed.map(|(v, _)| v)),
                    "experiment": o.as_ref().and_then(|o| o.observed.map(|(_, e)| e.summary.clone())),
                    "why": q.why,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"lesson": step, "predictions": list}))?);
        return Ok(0);
    }
    if lesson.predict.is_empty() {
        println!("Lesson {step} asks for no prediction.");
        return Ok(0);
    }
    println!("Lesson {step} · {}: predict before you run the experiment.", lesson.title_for(cfg.track));
    for q in &lesson.predict {
        println!("\n[{}] {}", q.id, q.q);
        match p.outcome(step, q) {
            None => println!("  not predicted yet: mqlab predict --lesson {step} --answer {}=NUMBER", q.id),
            Some(o) => {
                println!("  you predicted {} {}", number(o.predicted.value), q.unit);
                match o.observed {
                    None => println!("  not observed yet: run the experiment (the lesson says how)"),
                    Some((v, e)) => {
                        println!("  observed {} {} — {}", number(v), q.unit, e.summary);
                        println!("  why: {}", q.why);
                    }
                }
            }
        }
    }
    Ok(0)
}

async fn run_solve(cfg: &Config, over: &crate::config::Overrides, args: SolveArgs) -> anyhow::Result<i32> {
    if args.stop {
        let stopped = crate::lessons::solve::stop_lesson(&cfg.data_dir, None).await?;
        if stopped.is_empty() {
            println!("No program a solution started is running.");
        }
        for name in stopped {
            println!("stopped {name}");
        }
        return Ok(0);
    }
    let course = Course::load()?;
    let track = args.track.unwrap_or(cfg.track);
    let step = args.lesson.context("give a lesson: mqlab solve N")?;
    let lesson = course.lesson(step).with_context(|| format!("there is no lesson {step} (lessons 1-{})", course.lessons.len()))?;
    if args.list {
        let steps = lesson.solution(track);
        println!(
            "Lesson {} · {} (track {}): {} step(s), then its checks",
            lesson.step,
            lesson.title_for(track),
            track.as_str(),
            steps.len()
        );
        for (i, s) in steps.iter().enumerate() {
            let p = s.plan(cfg)?;
            println!("[{}/{}] {}", i + 1, steps.len(), p.say);
            for l in p.shown() {
                println!("  {l}");
            }
        }
        return Ok(0);
    }
    let over = over.clone();
    let load = move || -> anyhow::Result<Config> {
        let mut c = Config::load(&over)?;
        c.track = track;
        Ok(c)
    };
    let mut say = |l: &str| println!("{l}");
    let solved = crate::lessons::solver::solve(&course, step, track, &load, &mut say).await?;
    if let Some(f) = &solved.failed {
        println!("\nThe solution stopped at {f}");
        println!("{} of {} step(s) ran in {:.0} s; the checks did not run.", solved.steps_run, solved.steps, solved.seconds);
        return Ok(1);
    }
    println!("\nChecks of lesson {step} (track {})", track.as_str());
    if solved.checks.is_empty() {
        println!("  this lesson has no checks: it is read, not proved");
    }
    print_results(&solved.checks, args.verbose, cfg);
    let failed = solved.checks.iter().filter(|r| r.status == Status::Fail).count();
    println!(
        "{} step(s) in {:.0} s; {} of {} check(s) passed",
        solved.steps,
        solved.seconds,
        solved.checks.iter().filter(|r| r.status == Status::Pass).count(),
        solved.checks.len()
    );
    Ok(if failed == 0 { 0 } else { 1 })
}

/// Check results as the command line shows them: the mark, the id and what it saw; with a
/// failure, what was expected and the hint; with `verbose`, the call each made.
fn print_results(results: &[probes::CheckResult], verbose: bool, cfg: &Config) {
    let width = results.iter().map(|r| r.id.len()).max().unwrap_or(0);
    for r in results {
        println!("  {} {:<width$}  {}", r.status.mark(), r.id, r.detail);
        if r.status == Status::Fail {
            // The line above is what it observed; this is what it wanted.
            if !r.expected.is_empty() {
                println!("    {:<width$}  expected: {}", "", r.expected);
            }
            // The hint ladder: the nudge; with --verbose, every rung down to the command.
            let rungs = probes::ladder(r, cfg);
            let shown = if verbose { rungs.len() } else { 1 };
            for (n, rung) in rungs.iter().take(shown).enumerate() {
                if rungs.len() == 1 {
                    println!("    {:<width$}  → {rung}", "");
                } else {
                    println!("    {:<width$}  → hint {}/{}: {rung}", "", n + 1, rungs.len());
                }
            }
            if !verbose && rungs.len() > 1 {
                println!("    {:<width$}    (--verbose: the step and the command)", "");
            }
        }
        if verbose && !r.call.is_empty() {
            println!("    {:<width$}  call: {}", "", r.call);
        }
    }
}

fn run_init(cfg: &Config, args: InitArgs) -> anyhow::Result<i32> {
    use crate::lessons::project::Outcome;
    let dir = args.dir.clone().unwrap_or_else(|| cfg.project_dir.clone());
    let outcomes = crate::lessons::project::write(&dir, cfg)?;
    for o in &outcomes {
        match o {
            Outcome::Written(p) => println!("wrote {}", p.display()),
            Outcome::Kept(p) => println!("kept  {} (it was there already; not overwritten)", p.display()),
        }
    }
    println!(
        "\nBroker {} · results {}\nNext (Python 3.10 or newer):\n  cd {}\n  python3 -m venv venv && source venv/bin/activate\n  pip install -r requirements.txt\n  celery -A celery_app worker --loglevel=info     # one terminal\n  python submit_task.py                           # another",
        mask_url(&cfg.broker_url),
        mask_url(&cfg.result_backend),
        crate::config::shell_path(&dir)
    );
    Ok(0)
}

fn run_export(cfg: &Config, args: ExportArgs) -> anyhow::Result<i32> {
    let course = Course::load()?;
    let (p, warning) = store(cfg).load_or_fresh();
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    let md = export::render(&p, &course, cfg);
    let output = args.output.clone().unwrap_or_else(|| cfg.project_dir.join("LEARNINGS.md").to_string_lossy().to_string());
    if output == "-" {
        print!("{md}");
    } else {
        let kept = export::write(std::path::Path::new(&output), &md).with_context(|| format!("cannot write {output}"))?;
        let shown = std::fs::canonicalize(&output).unwrap_or_else(|_| output.clone().into());
        eprintln!("Wrote {}", shown.display());
        let dir = shown.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
        for chart in export::write_charts(&dir, &p)? {
            eprintln!("Wrote {}", chart.display());
        }
        if let Some(k) = kept {
            eprintln!("The previous version is kept as {}", k.display());
        }
    }
    Ok(0)
}

async fn run_forward(cfg: &Config, context_explicit: bool) -> anyhow::Result<i32> {
    use crate::forward::Event;
    crate::logging::init_stderr("info");
    let mut probes = Probes::new(cfg.clone());
    probes.context_explicit = context_explicit;
    let client = match crate::probes::kube::stream_client(&probes).await {
        Ok(c) => c,
        Err(o) => {
            eprintln!("error: {}", o.detail);
            if let Some(h) = o.hint {
                eprintln!("  → {h}");
            }
            return Ok(1);
        }
    };
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut task = tokio::spawn(crate::forward::run(client, cfg.namespace.clone(), cfg.data_dir.clone(), tx, stop_rx));
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(Event::Listening(fw)) => {
                    println!("Forwarding from context {} (namespace {}), until Ctrl-C:", cfg.kube_context, cfg.namespace);
                    for f in &fw {
                        let moved = if f.local != f.target.port { format!("   ({} is taken on this machine)", f.target.port) } else { String::new() };
                        println!("  {:<11} 127.0.0.1:{:<5} → svc/{} port {}{moved}", f.target.name, f.local, f.target.service, f.target.port);
                    }
                    println!("mqlab's commands, checks and lessons on this machine use these ports while this runs.");
                }
                Some(Event::Failed(e)) => {
                    eprintln!("error: {e}");
                    return Ok(1);
                }
                Some(Event::Elsewhere(other)) => {
                    let ports: Vec<String> = other.ports.iter().map(|(svc, local)| format!("{svc} → 127.0.0.1:{local}")).collect();
                    eprintln!(
                        "error: port-forwards for {} are already served by process {} (namespace {}; {}); stop that one first",
                        cfg.data_dir.display(),
                        other.pid,
                        other.namespace,
                        ports.join(", ")
                    );
                    return Ok(1);
                }
                Some(Event::State { .. }) => {}
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = &mut task => return Ok(1),
        }
    }
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    Ok(0)
}

async fn run_sandbox(cfg: &Config, args: SandboxArgs) -> anyhow::Result<i32> {
    use crate::sandbox::{Part, Sandbox};
    match args.action {
        SandboxAction::Up { json } => {
            let (sb, started) = Sandbox::up(&cfg.data_dir, |step| {
                if !json {
                    eprintln!("  {step}");
                }
            })
            .await?;
            if json {
                let v = json!({"started": started, "broker": mask_url(&sb.broker_url()), "management": sb.management_url(), "results": sb.result_backend()});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{}\n{}", if started { "Sandbox running:" } else { "Sandbox already running:" }, sb.describe());
                println!("mqlab uses it from now on (flags and MQLAB_* variables still win). Stop it with `mqlab sandbox down`.");
            }
            Ok(0)
        }
        SandboxAction::Down => {
            match Sandbox::down(&cfg.data_dir).await? {
                Some(report) => {
                    for l in report.lines() {
                        println!("{l}");
                    }
                    println!("The sandbox record is removed.");
                }
                None => println!("No sandbox is recorded; nothing to stop."),
            }
            Ok(0)
        }
        SandboxAction::Status { json } => {
            let Some(sb) = Sandbox::load(&cfg.data_dir) else {
                if json {
                    println!("{}", json!({"running": false}));
                } else {
                    println!("No sandbox. Start one with `mqlab sandbox up`.");
                }
                return Ok(1);
            };
            let h = sb.health().await;
            let ok = h.rabbitmq.ok() && h.redis.ok();
            if json {
                let v = json!({"running": ok, "rabbitmq": h.rabbitmq, "redis": h.redis, "broker": mask_url(&sb.broker_url()), "management": sb.management_url(), "results": sb.result_backend()});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let word = |p: Part| match p {
                    Part::Running => "running",
                    Part::NotAnswering => "not answering",
                    Part::Crashed => "crashed (process gone): `mqlab sandbox up` starts it again",
                };
                println!("RabbitMQ  {}\nRedis     {}\n{}", word(h.rabbitmq), word(h.redis), sb.describe());
            }
            Ok(if ok { 0 } else { 1 })
        }
    }
}
