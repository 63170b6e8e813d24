//! The one keymap: each binding says which keys do what, where, and how it is shown. The update
//! function, the footer hints, the help overlay and the README's key table all read this table.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Everything a key can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    Help,
    NextPane,
    PrevPane,
    ScreenLesson,
    ScreenLab,
    ScreenChecklist,
    NextLesson,
    PrevLesson,
    Down,
    Up,
    PageDown,
    PageUp,
    Top,
    Bottom,
    Left,
    Right,
    RunChecks,
    RunAllChecks,
    SwitchTrack,
    Notes,
    Export,
    WorkerStart,
    WorkerStop,
    WorkerKill,
    WorkerRestart,
    ConcurrencyUp,
    ConcurrencyDown,
    ToggleAcks,
    SubmitHello,
    SubmitAdd,
    SubmitDivide,
    BurstHello,
    BurstAdd,
    EditArgs,
    Open,
    Tick,
    Sandbox,
    Filter,
    Follow,
    Revoke,
    Init,
    Forwards,
    RunCommand,
    Solve,
    ResetLesson,
    ShowCalls,
    Hint,
    Quiz,
    Predict,
}

/// Where a binding applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Anywhere no popup is open.
    Global,
    /// On the lesson screen.
    Lesson,
    /// In the task table (lab).
    Tasks,
    /// In the checklist.
    Checklist,
}

impl Scope {
    pub fn label(self) -> &'static str {
        match self {
            Scope::Global => "everywhere",
            Scope::Lesson => "lesson",
            Scope::Tasks => "lab",
            Scope::Checklist => "checklist",
        }
    }
}

/// A key as written in the table: a code and whether Shift/Ctrl are part of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn k(c: char) -> Key {
    Key { code: KeyCode::Char(c), ctrl: false }
}

const fn code(c: KeyCode) -> Key {
    Key { code: c, ctrl: false }
}

const fn ctrl(c: char) -> Key {
    Key { code: KeyCode::Char(c), ctrl: true }
}

pub struct Binding {
    pub keys: &'static [Key],
    /// How the keys are written in hints, help and the README.
    pub label: &'static str,
    pub action: Action,
    pub scope: Scope,
    /// What it does, for the help and the README.
    pub help: &'static str,
    /// Short word for the footer hints; empty when the binding is not hinted.
    pub hint: &'static str,
}

/// The whole keymap. Actions that lose work (kill) are on shifted keys.
pub const KEYMAP: &[Binding] = &[
    Binding { keys: &[k('q'), ctrl('c')], label: "q, Ctrl-C", action: Action::Quit, scope: Scope::Global, help: "quit", hint: "quit" },
    Binding { keys: &[k('?')], label: "?", action: Action::Help, scope: Scope::Global, help: "all keys", hint: "keys" },
    Binding {
        keys: &[code(KeyCode::Tab)],
        label: "Tab",
        action: Action::NextPane,
        scope: Scope::Global,
        help: "next pane (lesson text, checks, live panel)",
        hint: "",
    },
    Binding {
        keys: &[code(KeyCode::BackTab)],
        label: "Shift-Tab",
        action: Action::PrevPane,
        scope: Scope::Global,
        help: "previous pane",
        hint: "",
    },
    Binding {
        keys: &[k('1')],
        label: "1",
        action: Action::ScreenLesson,
        scope: Scope::Global,
        help: "lesson screen (with its live panel when wide)",
        hint: "",
    },
    Binding { keys: &[k('2')], label: "2", action: Action::ScreenLab, scope: Scope::Global, help: "full lab screen", hint: "lab" },
    Binding { keys: &[k('3')], label: "3", action: Action::ScreenChecklist, scope: Scope::Global, help: "lessons and checklist", hint: "" },
    Binding { keys: &[k(']')], label: "]", action: Action::NextLesson, scope: Scope::Global, help: "next lesson", hint: "" },
    Binding { keys: &[k('[')], label: "[", action: Action::PrevLesson, scope: Scope::Global, help: "previous lesson", hint: "lesson" },
    Binding {
        keys: &[code(KeyCode::Down), k('j')],
        label: "↓, j",
        action: Action::Down,
        scope: Scope::Global,
        help: "scroll down / next row",
        hint: "",
    },
    Binding {
        keys: &[code(KeyCode::Up), k('k')],
        label: "↑, k",
        action: Action::Up,
        scope: Scope::Global,
        help: "scroll up / previous row",
        hint: "",
    },
    Binding {
        keys: &[code(KeyCode::PageDown), k(' ')],
        label: "PgDn, Space",
        action: Action::PageDown,
        scope: Scope::Global,
        help: "a page down",
        hint: "",
    },
    Binding { keys: &[code(KeyCode::PageUp)], label: "PgUp", action: Action::PageUp, scope: Scope::Global, help: "a page up", hint: "" },
    Binding {
        keys: &[code(KeyCode::Home), k('g')],
        label: "Home, g",
        action: Action::Top,
        scope: Scope::Global,
        help: "to the top",
        hint: "",
    },
    Binding {
        keys: &[code(KeyCode::End), k('G')],
        label: "End, G",
        action: Action::Bottom,
        scope: Scope::Global,
        help: "to the bottom",
        hint: "",
    },
    Binding {
        keys: &[code(KeyCode::Left)],
        label: "←",
        action: Action::Left,
        scope: Scope::Global,
        help: "scroll wide code blocks left / previous lesson",
        hint: "",
    },
    Binding {
        keys: &[code(KeyCode::Right)],
        label: "→",
        action: Action::Right,
        scope: Scope::Global,
        help: "scroll wide code blocks right / next lesson",
        hint: "",
    },
    Binding {
        keys: &[k('r')],
        label: "r",
        action: Action::RunChecks,
        scope: Scope::Global,
        help: "run this lesson's checks",
        hint: "check",
    },
    Binding { keys: &[k('R')], label: "R", action: Action::RunAllChecks, scope: Scope::Global, help: "run every check", hint: "" },
    Binding {
        keys: &[k('v')],
        label: "v",
        action: Action::ShowCalls,
        scope: Scope::Global,
        help: "show / hide the exact call each check makes (HTTP path, AMQP operation, Redis command, host:port)",
        hint: "",
    },
    Binding {
        keys: &[k('i')],
        label: "i",
        action: Action::Hint,
        scope: Scope::Global,
        help: "a hint for the first failing check: a nudge, then the step, then the command (one more each press)",
        hint: "hint",
    },
    Binding {
        keys: &[k('Q')],
        label: "Q",
        action: Action::Quiz,
        scope: Scope::Global,
        help: "the end-of-course quiz: five questions from the curriculum, scored (a–d answers)",
        hint: "",
    },
    Binding {
        keys: &[k('P')],
        label: "P",
        action: Action::Predict,
        scope: Scope::Global,
        help: "predict before an experiment: this lesson's questions (a number each), later shown beside what the experiment measured",
        hint: "",
    },
    Binding {
        keys: &[k('D')],
        label: "D",
        action: Action::Solve,
        scope: Scope::Global,
        help: "do this lesson for me: run its solution, the lesson's own commands step by step (lists them and asks first)",
        hint: "solve",
    },
    Binding {
        keys: &[k('U')],
        label: "U",
        action: Action::ResetLesson,
        scope: Scope::Global,
        help: "reset this lesson: its checks, experiments, note and ticks, and what its solution left running (asks first)",
        hint: "",
    },
    Binding {
        keys: &[k('T')], label: "T", action: Action::SwitchTrack, scope: Scope::Global, help: "switch track: k3s ↔ local", hint: ""
    },
    Binding { keys: &[k('n')], label: "n", action: Action::Notes, scope: Scope::Global, help: "your notes for this lesson", hint: "notes" },
    Binding {
        keys: &[k('E')],
        label: "E",
        action: Action::Export,
        scope: Scope::Global,
        help: "export LEARNINGS.md to your project folder (~/rabbitmq-celery-learning)",
        hint: "",
    },
    Binding { keys: &[k('w')], label: "w", action: Action::WorkerStart, scope: Scope::Global, help: "worker: start", hint: "worker" },
    Binding {
        keys: &[k('s')],
        label: "s",
        action: Action::WorkerStop,
        scope: Scope::Global,
        help: "worker: stop gracefully (running tasks finish)",
        hint: "stop",
    },
    Binding {
        keys: &[k('K')],
        label: "K",
        action: Action::WorkerKill,
        scope: Scope::Global,
        help: "worker: kill, as a crash would (unacknowledged messages go back to the queue)",
        hint: "kill",
    },
    Binding { keys: &[k('W')], label: "W", action: Action::WorkerRestart, scope: Scope::Global, help: "worker: restart", hint: "" },
    Binding {
        keys: &[k('+'), k('=')],
        label: "+",
        action: Action::ConcurrencyUp,
        scope: Scope::Global,
        help: "double the worker's concurrency",
        hint: "",
    },
    Binding {
        keys: &[k('-')],
        label: "-",
        action: Action::ConcurrencyDown,
        scope: Scope::Global,
        help: "halve the worker's concurrency",
        hint: "",
    },
    Binding { keys: &[k('a')], label: "a", action: Action::ToggleAcks, scope: Scope::Global, help: "acks late ↔ early", hint: "" },
    Binding { keys: &[k('h')], label: "h", action: Action::SubmitHello, scope: Scope::Global, help: "send tasks.hello", hint: "hello" },
    Binding { keys: &[k('A')], label: "A", action: Action::SubmitAdd, scope: Scope::Global, help: "send tasks.add", hint: "add" },
    Binding { keys: &[k('d')], label: "d", action: Action::SubmitDivide, scope: Scope::Global, help: "send tasks.divide", hint: "divide" },
    Binding {
        keys: &[k('b')],
        label: "b",
        action: Action::BurstHello,
        scope: Scope::Global,
        help: "burst: 20 × tasks.hello",
        hint: "burst",
    },
    Binding { keys: &[k('B')], label: "B", action: Action::BurstAdd, scope: Scope::Global, help: "burst: 100 × tasks.add", hint: "" },
    Binding {
        keys: &[k('e')],
        label: "e",
        action: Action::EditArgs,
        scope: Scope::Global,
        help: "edit the arguments the send keys use",
        hint: "",
    },
    Binding {
        keys: &[code(KeyCode::Enter)],
        label: "Enter",
        action: Action::Open,
        scope: Scope::Tasks,
        help: "the selected task's message, stored result and traceback",
        hint: "details",
    },
    Binding {
        keys: &[k('/')],
        label: "/",
        action: Action::Filter,
        scope: Scope::Tasks,
        help: "filter tasks by state or name",
        hint: "filter",
    },
    Binding {
        keys: &[k('f')],
        label: "f",
        action: Action::Follow,
        scope: Scope::Tasks,
        help: "follow the newest task on / off",
        hint: "follow",
    },
    Binding {
        keys: &[k('X')],
        label: "X",
        action: Action::Revoke,
        scope: Scope::Tasks,
        help: "revoke the selected task: every worker drops it (celery control revoke)",
        hint: "revoke",
    },
    Binding {
        keys: &[k('x'), code(KeyCode::Enter)],
        label: "x, Enter",
        action: Action::Tick,
        scope: Scope::Checklist,
        help: "tick / untick the selected item by hand",
        hint: "tick",
    },
    Binding {
        keys: &[k('S')],
        label: "S",
        action: Action::Sandbox,
        scope: Scope::Global,
        help: "start a private RabbitMQ and Redis and use them now (local track)",
        hint: "",
    },
    Binding {
        keys: &[k('!')],
        label: "!",
        action: Action::RunCommand,
        scope: Scope::Lesson,
        help: "run or copy one of this step's commands: it is shown first; Enter runs it here (output, exit code, duration; c cancels), y copies it (OSC 52)",
        hint: "run",
    },
    Binding {
        keys: &[k('F')],
        label: "F",
        action: Action::Forwards,
        scope: Scope::Global,
        help: "start / stop mqlab's port-forwards to the cluster's RabbitMQ and Redis (cluster track)",
        hint: "",
    },
    Binding {
        keys: &[k('I')],
        label: "I",
        action: Action::Init,
        scope: Scope::Global,
        help: "write the Python project (celery_app.py, submit_task.py) to your project folder (~/rabbitmq-celery-learning)",
        hint: "",
    },
];

impl Key {
    fn matches(&self, ev: &KeyEvent) -> bool {
        let is_ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
        if self.ctrl != is_ctrl {
            return false;
        }
        match (self.code, ev.code) {
            // Shifted letters arrive as the capital letter (Shift is then part of the character).
            (KeyCode::Char(a), KeyCode::Char(b)) => a == b,
            (a, b) => a == b,
        }
    }
}

/// The action for a key where `scope` applies: the scoped bindings first, then the global ones.
pub fn lookup(ev: &KeyEvent, scope: Scope) -> Option<Action> {
    let find = |s: Scope| KEYMAP.iter().find(|b| b.scope == s && b.keys.iter().any(|k| k.matches(ev))).map(|b| b.action);
    if scope != Scope::Global
        && let Some(a) = find(scope)
    {
        return Some(a);
    }
    find(Scope::Global)
}

/// The footer's hints for a scope: the hinted global keys plus the scope's own.
pub fn hints(scope: Scope) -> String {
    let mut out: Vec<String> = KEYMAP
        .iter()
        .filter(|b| !b.hint.is_empty() && (b.scope == scope && scope != Scope::Global))
        .map(|b| format!("{} {}", b.label.split(',').next().unwrap_or(b.label), b.hint))
        .collect();
    out.extend(
        KEYMAP
            .iter()
            .filter(|b| !b.hint.is_empty() && b.scope == Scope::Global)
            .map(|b| format!("{} {}", b.label.split(',').next().unwrap_or(b.label), b.hint)),
    );
    out.join(" · ")
}

/// The key table in Markdown, as the README carries it.
pub fn markdown_table() -> String {
    let mut s = String::from("| key | where | what it does |\n|---|---|---|\n");
    for b in KEYMAP {
        s.push_str(&format!("| `{}` | {} | {} |\n", b.label.replace('|', "\\|"), b.scope.label(), b.help));
    }
    s
}

/// Pairs of bindings whose keys collide in the same place (must be none).
pub fn conflicts() -> Vec<String> {
    let mut out = vec![];
    for (i, a) in KEYMAP.iter().enumerate() {
        for b in &KEYMAP[i + 1..] {
            if a.scope != b.scope {
                continue;
            }
            for ka in a.keys {
                if b.keys.contains(ka) {
                    out.push(format!("{:?} and {:?} share {:?} in {:?}", a.action, b.action, ka.code, a.scope));
                }
            }
        }
    }
    out
}
