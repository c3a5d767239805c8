//! Starting, probing and ending `scalesim worker` processes.
//!
//! A [`WorkerProcess`] owns its child: dropping it ends the process (stdin closed, then killed if
//! it has not gone within a grace period) and reaps it, so no code path (error, panic unwinding,
//! normal end) leaves a worker behind. A parent killed outright is covered by the worker itself,
//! which exits when its stdin closes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::worker::READY_LINE_PREFIX;

/// How long a new worker may take to print its ports.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a worker asked to stop may take before it is killed.
const STOP_GRACE: Duration = Duration::from_millis(500);

pub struct WorkerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    pub work: SocketAddr,
    pub control: SocketAddr,
}

impl WorkerProcess {
    /// Starts `exe worker --concurrency N --parent PID` and waits for it to listen.
    pub fn spawn(exe: &Path, concurrency: u32) -> Result<WorkerProcess, String> {
        let mut child = Command::new(exe)
            .args(["worker", "--concurrency", &concurrency.to_string(), "--parent", &std::process::id().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting worker `{}`: {e}", exe.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut proc =
            WorkerProcess { child, stdin, work: ([127, 0, 0, 1], 0).into(), control: ([127, 0, 0, 1], 0).into() };
        let line = rx
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| format!("worker `{}` printed no ports within {} s", exe.display(), START_TIMEOUT.as_secs()))?;
        let port = |key: &str| -> Option<u16> {
            line.split_whitespace().find_map(|w| w.strip_prefix(key)).and_then(|p| p.parse().ok())
        };
        match (line.starts_with(READY_LINE_PREFIX), port("work="), port("control=")) {
            (true, Some(w), Some(c)) => {
                proc.work.set_port(w);
                proc.control.set_port(c);
                Ok(proc)
            }
            _ => Err(format!("worker `{}` started with an unexpected line {:?}", exe.display(), line.trim())),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True once the process has ended (crashed or killed).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Ends the process: closes its stdin (it exits on end of file), kills it after a grace
    /// period, and reaps it.
    pub fn stop(&mut self) {
        self.stdin.take();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stdin.take();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
