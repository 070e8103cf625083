//! Running the binary, and finding the external tools some tests need.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

/// What one run of `eventfork` did.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `eventfork` with `args`, feeding `stdin`.
pub(crate) fn eventfork(args: &[&str], stdin: &str) -> Run {
    eventfork_in(Path::new(env!("CARGO_MANIFEST_DIR")), args, stdin, &[])
}

/// Runs `eventfork` in `dir` with extra environment variables.
pub(crate) fn eventfork_in(dir: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventfork"))
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the eventfork binary starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("stdin takes the input");
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("eventfork ends");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs `eventfork` with `args` and extra environment variables, its stdout closed before
/// it writes (as `| head` does once it has its lines): the exit status and stderr.
pub(crate) fn eventfork_with_stdout_closed<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    env: &[(&str, String)],
) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventfork"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the eventfork binary starts");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("eventfork ends");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The root of the workspace.
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli sits in the workspace")
        .to_path_buf()
}

pub(crate) use test_support::external;
