//! The order example's binary, run as a user runs it against the emulator: one command, or a
//! worker that is killed when the test ends.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The example's binary (cargo builds examples before it runs tests).
pub(crate) fn binary() -> PathBuf {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp is in the target directory")
        .to_owned();
    let path = target.join("debug/examples/order");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test` (it builds the examples)",
        path.display()
    );
    path
}

/// A child process that is killed when the test ends, however it ends.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn command(endpoint: &str, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE");
    command
}

pub(crate) fn run_binary(endpoint: &str, args: &[&str]) -> Output {
    command(endpoint, args).output().expect("run the example")
}

pub(crate) fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Starts `order worker` with `env` added, and waits until it names its three queues; the
/// process, and what it has printed so far.
pub(crate) fn worker(endpoint: &str, env: &[(&str, &str)]) -> (Running, Arc<Mutex<String>>) {
    let mut command = command(endpoint, &["worker"]);
    command.envs(env.iter().copied());
    let mut worker = Running(
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the worker"),
    );
    let stdout = worker.0.stdout.take().unwrap();
    let lines = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = lines.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut queues = 0;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.starts_with("worker on ") {
                queues += 1;
                if queues == 3 {
                    let _ = tx.send(());
                }
            }
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the worker names its queues within 60 s");
    (worker, lines)
}
