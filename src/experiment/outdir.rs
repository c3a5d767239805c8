//! Output folders: how a run folder is written so that a user never loses a file and never sees a
//! half-written or mixed run.
//!
//! The protocol, for one run folder `out`:
//! 1. `out` is created if absent (and removed again if the run fails and it is still empty), then
//!    locked with an advisory `flock` on the folder itself: a second scalesim process writing to the
//!    same folder is refused at once with a clear message, instead of interleaving its files.
//! 2. If `out` already holds files, it must be an earlier run folder; files a run never writes
//!    (the user's notes, say) are *foreign*: without `force` the run is refused and names them,
//!    with `force` they are kept untouched.
//! 3. The run writes into `out/.partial/`. Only when it has succeeded are its files renamed into
//!    `out`, each rename atomic, with the completion markers (`summary.json` and the like) removed
//!    first and renamed in last: a folder with a marker is always one complete run.
//!
//! The folder itself is never renamed or removed once it holds anything, so `--out .` (a run
//! folder that is the working directory) works like any other path.
//!
//! Owns nothing of what a run contains: callers write the files, this module only places them.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::{out_err, RunError};

/// Where a run is written before it is committed, inside the run folder.
pub const STAGING: &str = ".partial";

/// Runs being written now: their staging folder, and the folders they created (deepest first), to
/// remove if the process is interrupted ([`clean_up_on_interrupt`]).
static IN_PROGRESS: std::sync::Mutex<Vec<(PathBuf, Vec<PathBuf>)>> = std::sync::Mutex::new(Vec::new());

/// Removes an interrupted run's staging folder and the empty folders it created, so that Ctrl-C
/// (or a scheduler's SIGTERM) leaves no hidden `.partial` and no empty run folder behind.
///
/// Call once, first thing in `main`, before any thread starts: SIGINT, SIGTERM and SIGHUP are
/// blocked in this thread (and so in every thread started after it) and taken by one thread that
/// cleans up and exits with 128 + the signal's number, as a shell reports a killed command. Child
/// processes start with signals unblocked (Rust's `Command` resets the mask).
pub fn clean_up_on_interrupt() {
    // SAFETY: plain libc calls on a signal set owned here; no Rust state is touched in a handler
    // (the signals are taken synchronously by `sigwait` on an ordinary thread).
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is a valid, initialised signal set.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            return;
        }
        let runs = IN_PROGRESS.lock().map(|g| g.clone()).unwrap_or_default();
        for (staging, created) in runs {
            let _ = fs::remove_dir_all(&staging);
            for dir in created {
                if fs::remove_dir(&dir).is_err() {
                    break;
                }
            }
            if let Some(out) = staging.parent() {
                eprintln!("interrupted: the unfinished run in {} was removed", out.display());
            }
        }
        std::process::exit(128 + sig);
    });
}

/// Registers a run in [`IN_PROGRESS`] for as long as it lives.
struct Registered(PathBuf);

impl Registered {
    fn new(staging: &Path, out: &Path, first_missing: Option<&Path>) -> Registered {
        let created: Vec<PathBuf> = match first_missing {
            Some(top) => {
                let mut v = Vec::new();
                for d in out.ancestors() {
                    v.push(d.to_path_buf());
                    if d == top {
                        break;
                    }
                }
                v
            }
            None => Vec::new(),
        };
        if let Ok(mut g) = IN_PROGRESS.lock() {
            g.push((staging.to_path_buf(), created));
        }
        Registered(staging.to_path_buf())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut g) = IN_PROGRESS.lock() {
            g.retain(|(s, _)| *s != self.0);
        }
    }
}

/// Every name scalesim writes into a run folder (runs, backend runs, validations and `report`).
/// Anything else in a run folder belongs to the user.
const GENERATED: &[&str] = &[
    "experiment_info.json",
    "summary.json",
    "timeline.csv",
    "actions.csv",
    "requests.csv",
    "latency.csv",
    // Written by backend runs before they shared the simulator's schema (format 1 folders).
    "backend_summary.json",
    "validation.json",
    "validation.md",
    "replicas_compared.csv",
    "sim_timeline.csv",
    "sim_actions.csv",
    "sim_summary.json",
    "sim_requests.csv",
    "local_timeline.csv",
    "local_actions.csv",
    "local_summary.json",
    "local_requests.csv",
    "validation_replicas.png",
    "validation_replicas.svg",
    "validation_cpu.png",
    "validation_cpu.svg",
    "charts",
    "index.html",
];

/// Files whose presence says "this run is complete": removed first and written last on a commit.
fn is_marker(name: &str) -> bool {
    name == "experiment_info.json" || name.ends_with("summary.json") || name == "validation.json"
}

/// An exclusive advisory lock on a folder, released when dropped (the descriptor is closed).
#[derive(Debug)]
pub struct FolderLock {
    _dir: fs::File,
}

/// Locks the existing folder `dir` for this process, or says that another process holds it.
pub fn lock_folder(dir: &Path) -> Result<FolderLock, RunError> {
    let f = fs::File::open(dir).map_err(|e| out_err(dir, e))?;
    // SAFETY: flock on a descriptor this function owns; no memory is shared with the call.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(out_err(
            dir,
            if e.kind() == io::ErrorKind::WouldBlock {
                "another scalesim process is writing to this folder; wait for it to finish or choose another \
                 output folder"
                    .to_string()
            } else {
                format!("cannot lock: {e}")
            },
        ));
    }
    Ok(FolderLock { _dir: f })
}

/// Creates `dir` (and its parents) if absent; says whether this call created `dir` itself.
pub fn ensure_folder(dir: &Path) -> Result<bool, RunError> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| out_err(parent, e))?;
    }
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if dir.is_dir() {
                Ok(false)
            } else {
                Err(out_err(dir, "exists and is not a folder"))
            }
        }
        Err(e) => Err(out_err(dir, e)),
    }
}

/// The entries of `out` that no scalesim run wrote, sorted by name.
fn foreign_entries(out: &Path) -> Result<Vec<String>, RunError> {
    let mut names = Vec::new();
    for e in fs::read_dir(out).map_err(|e| out_err(out, e))? {
        let name = e.map_err(|e| out_err(out, e))?.file_name().to_string_lossy().into_owned();
        if name != STAGING && !GENERATED.contains(&name.as_str()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Refuses to write a run into `out` when that would touch what is not a run's.
fn check_replaceable(out: &Path, force: bool) -> Result<(), RunError> {
    let foreign = foreign_entries(out)?;
    if foreign.is_empty() {
        return Ok(());
    }
    if !out.join("experiment_info.json").is_file() {
        return Err(out_err(out, "exists and is not a scalesim run folder; refusing to write a run into it"));
    }
    if force {
        return Ok(());
    }
    let shown: Vec<&str> = foreign.iter().take(3).map(String::as_str).collect();
    let more = if foreign.len() > 3 { format!(" and {} more", foreign.len() - 3) } else { String::new() };
    Err(out_err(
        out,
        format!(
            "this run folder also holds files scalesim did not write ({}{more}); rerun with --force to replace \
             the run and keep them, or choose another output folder",
            shown.join(", ")
        ),
    ))
}

/// Writes a run folder by the protocol in the module doc: `write` fills the staging folder it is
/// given; `force` keeps foreign files instead of refusing them.
pub fn write_run_folder<T>(
    out: &Path,
    force: bool,
    write: impl FnOnce(&Path) -> Result<T, RunError>,
) -> Result<T, RunError> {
    // The highest folder on the way to `out` that does not exist yet: a failed run removes what it
    // created up to there (an empty `runs/` included), never more.
    let first_missing =
        out.ancestors().filter(|a| !a.as_os_str().is_empty() && !a.exists()).last().map(Path::to_path_buf);
    let created = ensure_folder(out)?;
    let _lock = lock_folder(out)?;
    // Registered as soon as the folder is ours (locked), before its staging folder exists: a signal
    // in between would otherwise find nothing to clean and leave the new folders behind (a race
    // the interrupt test met under load). Cleaning a staging folder not yet made is harmless, and
    // only empty created folders are removed.
    let staging = out.join(STAGING);
    let _registered = Registered::new(&staging, out, if created { first_missing.as_deref() } else { None });
    let result = check_replaceable(out, force).and_then(|()| {
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(|e| out_err(&staging, e))?;
        }
        fs::create_dir(&staging).map_err(|e| out_err(&staging, e))?;
        match write(&staging) {
            Ok(v) => commit(&staging, out).map(|()| v),
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                Err(e)
            }
        }
    });
    if result.is_err() && created {
        // Only empty folders go: never anything a user or an earlier run put there.
        if let Some(top) = first_missing {
            for dir in out.ancestors() {
                if fs::remove_dir(dir).is_err() || dir == top {
                    break;
                }
            }
        }
    }
    result
}

/// Moves the staged files into `out`, markers last, and removes what the earlier run left.
fn commit(staging: &Path, out: &Path) -> Result<(), RunError> {
    let mut staged: Vec<String> = Vec::new();
    for e in fs::read_dir(staging).map_err(|e| out_err(staging, e))? {
        staged.push(e.map_err(|e| out_err(staging, e))?.file_name().to_string_lossy().into_owned());
    }
    staged.sort();
    // The earlier run's markers go first, so that an interruption from here on leaves a folder
    // that no reader takes for a complete run.
    for name in GENERATED.iter().filter(|n| is_marker(n)) {
        remove_entry(&out.join(name))?;
    }
    for name in GENERATED.iter().filter(|n| !is_marker(n) && !staged.iter().any(|s| s == *n)) {
        remove_entry(&out.join(name))?;
    }
    let (markers, files): (Vec<&String>, Vec<&String>) = staged.iter().partition(|n| is_marker(n));
    for name in files.into_iter().chain(markers) {
        let target = out.join(name);
        if target.is_dir() {
            remove_entry(&target)?;
        }
        fs::rename(staging.join(name), &target).map_err(|e| out_err(&target, e))?;
    }
    fs::remove_dir(staging).map_err(|e| out_err(staging, e))
}

fn remove_entry(p: &Path) -> Result<(), RunError> {
    let r = if p.is_dir() { fs::remove_dir_all(p) } else { fs::remove_file(p) };
    match r {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(out_err(p, e)),
        _ => Ok(()),
    }
}

/// A short, stable hash of `parts` (FNV-1a, 64 bits, as 8 hex digits of its fold), for default
/// folder names that differ whenever what was run differs. Stable across builds and machines,
/// unlike std's `DefaultHasher`.
pub fn short_hash(parts: &[&[u8]]) -> String {
    use crate::engine::{fnv1a64_extend, FNV1A64_START};
    // Each part is followed by 0xff (a byte UTF-8 never holds), so ["ab"] and ["a", "b"] differ.
    let h = parts.iter().fold(FNV1A64_START, |h, part| fnv1a64_extend(fnv1a64_extend(h, part), &[0xff]));
    format!("{:08x}", (h ^ (h >> 32)) as u32)
}

/// The bytes of `path` for [`short_hash`], or its name when it cannot be read (the run that
/// follows will then report the error properly).
pub fn file_bytes(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|_| path.display().to_string().into_bytes())
}

/// The file stem of `path`, for default folder names.
pub fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `s` with every character but ASCII letters, digits, `-` and `.` replaced by `_`: a folder name
/// that is safe on every file system and in shell commands.
pub fn safe_name(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

/// `runs/NAME` under the working directory: the default parent of run folders.
pub fn default_run_path(name: &str) -> PathBuf {
    PathBuf::from("runs").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_files<'a>(names: &'a [&'a str]) -> impl FnOnce(&Path) -> Result<(), RunError> + 'a {
        move |d: &Path| {
            for n in names {
                fs::write(d.join(n), n).unwrap();
            }
            Ok(())
        }
    }

    #[test]
    fn rerun_keeps_foreign_files_only_with_force() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("r");
        write_run_folder(&out, false, write_files(&["experiment_info.json", "summary.json", "latency.csv"])).unwrap();
        fs::write(out.join("NOTES"), "mine").unwrap();
        let e = write_run_folder(&out, false, write_files(&["experiment_info.json", "summary.json"])).unwrap_err();
        assert!(e.to_string().contains("NOTES") && e.to_string().contains("--force"), "{e}");
        assert!(out.join("latency.csv").is_file(), "a refused run changes nothing");
        write_run_folder(&out, true, write_files(&["experiment_info.json", "summary.json"])).unwrap();
        assert_eq!(fs::read_to_string(out.join("NOTES")).unwrap(), "mine");
        assert!(!out.join("latency.csv").exists(), "the earlier run's files that the new one lacks are gone");
        assert!(!out.join(STAGING).exists());
    }

    #[test]
    fn out_dot_is_the_working_folder_itself() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("r");
        write_run_folder(&out, false, write_files(&["experiment_info.json", "summary.json"])).unwrap();
        write_run_folder(&out.join("."), false, write_files(&["experiment_info.json", "summary.json", "timeline.csv"]))
            .unwrap();
        assert!(out.join("timeline.csv").is_file());
        let hidden: Vec<_> = fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(hidden, vec![std::ffi::OsString::from("r")], "nothing beside the run folder");
    }

    #[test]
    fn a_failed_run_leaves_no_folder_it_created_and_keeps_the_old_run() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("r");
        let fail = |_: &Path| -> Result<(), RunError> { Err(out_err(Path::new("x"), "boom")) };
        assert!(write_run_folder(&out, false, fail).is_err());
        assert!(!out.exists());
        write_run_folder(&out, false, write_files(&["experiment_info.json", "summary.json"])).unwrap();
        assert!(write_run_folder(&out, false, fail).is_err());
        assert_eq!(fs::read_to_string(out.join("summary.json")).unwrap(), "summary.json");
        assert!(!out.join(STAGING).exists());
    }

    #[test]
    fn a_failed_run_removes_the_empty_parents_it_created() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("runs/deep/r");
        let fail = |_: &Path| -> Result<(), RunError> { Err(out_err(Path::new("x"), "boom")) };
        assert!(write_run_folder(&out, false, fail).is_err());
        assert!(!t.path().join("runs").exists(), "runs/ was created by the failed run and is gone");
        fs::create_dir(t.path().join("runs")).unwrap();
        fs::write(t.path().join("runs/keep"), "x").unwrap();
        assert!(write_run_folder(&out, false, fail).is_err());
        assert!(t.path().join("runs/keep").is_file() && !t.path().join("runs/deep").exists());
    }

    #[test]
    fn a_second_writer_is_refused_while_the_first_holds_the_folder() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("r");
        let e = write_run_folder(&out, false, |d: &Path| {
            let inner = write_run_folder(d.parent().unwrap(), false, write_files(&["summary.json"]));
            fs::write(d.join("summary.json"), "first").unwrap();
            Ok(inner.unwrap_err().to_string())
        })
        .unwrap();
        assert!(e.contains("another scalesim process"), "{e}");
        assert_eq!(fs::read_to_string(out.join("summary.json")).unwrap(), "first");
    }

    #[test]
    fn a_folder_of_other_files_is_never_a_run_target() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("thesis.tex"), "x").unwrap();
        let e = write_run_folder(t.path(), true, write_files(&["summary.json"])).unwrap_err();
        assert!(e.to_string().contains("not a scalesim run folder"), "{e}");
        assert!(!t.path().join("summary.json").exists());
    }

    #[test]
    fn short_hash_is_stable() {
        // FNV-1a of "a" 0xff "b" 0xff, folded to 32 bits (computed independently, in Python):
        // pinned, so default folder names never drift between builds.
        assert_eq!(short_hash(&[b"a", b"b"]), "4024880b");
        assert_ne!(short_hash(&[b"a", b"b"]), short_hash(&[b"ab"]));
        assert_eq!(short_hash(&[]).len(), 8);
    }
}
