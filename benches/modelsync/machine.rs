//! Where and on what the figures were taken, printed above them so that a
//! run can be told apart from another.

use std::process::Command;

pub struct Machine {
    pub date: String,
    pub arch: String,
    pub cores: usize,
    pub commit: String,
}

impl Machine {
    pub fn probe() -> Self {
        Machine {
            date: stdout_of("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]),
            arch: stdout_of("uname", &["-m"]),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            commit: commit(),
        }
    }
}

/// The commit the figures belong to, marked when the working tree has
/// changes that it does not contain.
fn commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let Some(head) = run("git", &["-C", dir, "rev-parse", "--short", "HEAD"]) else {
        return "unknown".into();
    };
    // Without optional locks, `git status` leaves the index file alone.
    let status = [
        "-C",
        dir,
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--untracked-files=no",
    ];
    match run("git", &status) {
        Some(changes) if !changes.is_empty() => format!("{head} (with uncommitted changes)"),
        _ => head,
    }
}

fn stdout_of(program: &str, args: &[&str]) -> String {
    run(program, args).unwrap_or_else(|| "unknown".into())
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
}
