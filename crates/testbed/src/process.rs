//! Child processes that never outlive their owner.
//!
//! Three layers, because a test can end in three ways:
//! - normal end or panic: [`ManagedProcess`]'s `Drop` kills the child and waits for it;
//! - the test process is killed (SIGKILL, nextest timeout, Ctrl-C): children are started under
//!   `setpriv --pdeathsig KILL`, so the kernel kills them when their parent dies. The death signal fires when the
//!   *thread* that forked exits, so every fork happens on one spawner thread that lives as long as the process;
//! - anything that still slipped through (a machine reboot mid-run, an old build): [`reap_stale_runs`] removes run
//!   directories whose owner is gone and kills the processes recorded in them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};

use crate::Error;

/// How a child is tied to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Killed when the owning process dies (tests).
    TiedToProcess,
    /// Runs on after we exit, in its own session (`cargo xtask up`); stopped by `cargo xtask down`.
    Detached,
}

/// A running child with its log file. Killing is idempotent.
#[derive(Debug)]
pub struct ManagedProcess {
    pub name: String,
    pub pid: u32,
    pub log: PathBuf,
    child: Option<Child>,
    lifetime: Lifetime,
}

type SpawnReply = Sender<std::io::Result<Child>>;

fn spawner() -> &'static Mutex<Sender<(Command, SpawnReply)>> {
    static SPAWNER: OnceLock<Mutex<Sender<(Command, SpawnReply)>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<(Command, SpawnReply)>();
        std::thread::Builder::new()
            .name("testbed-spawner".into())
            .spawn(move || {
                // Lives until the process exits: the sender is in a static and is never dropped.
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("spawn the testbed spawner thread");
        Mutex::new(tx)
    })
}

impl ManagedProcess {
    /// Starts `program args…`, stdout and stderr appended to `log`.
    pub fn spawn(
        name: &str,
        setpriv: &Path,
        program: &Path,
        args: &[String],
        log: &Path,
        lifetime: Lifetime,
    ) -> Result<Self, Error> {
        let out = File::create(log).map_err(|e| Error::io(log, e))?;
        let err = out.try_clone().map_err(|e| Error::io(log, e))?;
        let mut command = match lifetime {
            Lifetime::TiedToProcess => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(program);
                c
            }
            Lifetime::Detached => {
                let mut c = Command::new(program);
                // Own process group: a Ctrl-C to `cargo xtask up` must not reach the clusters.
                std::os::unix::process::CommandExt::process_group(&mut c, 0);
                c
            }
        };
        command.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        let child = match lifetime {
            Lifetime::TiedToProcess => {
                let (tx, rx) = channel();
                spawner()
                    .lock()
                    .map_err(|_| Error::Start(format!("{name}: spawner lock poisoned")))?
                    .send((command, tx))
                    .map_err(|_| Error::Start(format!("{name}: spawner thread is gone")))?;
                rx.recv()
                    .map_err(|_| Error::Start(format!("{name}: spawner thread is gone")))?
            }
            Lifetime::Detached => command.spawn(),
        }
        .map_err(|e| Error::Start(format!("{name}: cannot start {}: {e}", program.display())))?;
        Ok(Self {
            name: name.to_string(),
            pid: child.id(),
            log: log.to_path_buf(),
            child: Some(child),
            lifetime,
        })
    }

    /// True while the child runs.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Forgets the child without killing it (detached processes outlive us on purpose).
    pub fn release(mut self) -> u32 {
        self.child = None;
        self.pid
    }

    /// The last lines of the child's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        if self.lifetime == Lifetime::TiedToProcess {
            self.kill();
        }
    }
}

/// The last `lines` lines of a log file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Name of the file in a run directory that names its owner pid.
pub const OWNER_FILE: &str = "owner.pid";
/// Name of the file in a run directory that lists child pids, one per line.
pub const PIDS_FILE: &str = "children.pid";

/// Records a child pid in the run directory so a later run can clean up after a hard crash.
pub fn record_child(run_dir: &Path, pid: u32) {
    use std::io::Write;
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.join(PIDS_FILE))
    {
        let _ = writeln!(file, "{pid}");
    }
}

/// True if `pid` is alive and its command line mentions `marker` (guards against pid reuse).
pub fn pid_alive_with(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| String::from_utf8_lossy(&bytes).contains(marker))
        .unwrap_or(false)
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// SIGKILLs a pid via `kill(1)` (no unsafe code, no libc).
pub fn kill_pid(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Removes run directories under `runs_root` whose owner process is gone, killing their recorded children.
pub fn reap_stale_runs(runs_root: &Path) {
    let Ok(entries) = std::fs::read_dir(runs_root) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let owner = std::fs::read_to_string(dir.join(OWNER_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if owner.is_some_and(pid_alive) {
            continue;
        }
        let marker = dir.to_string_lossy().to_string();
        for pid in std::fs::read_to_string(dir.join(PIDS_FILE))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse::<u32>().ok())
        {
            if pid_alive_with(pid, &marker) {
                kill_pid(pid);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
