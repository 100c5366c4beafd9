//! What a test logs, captured: the lines of the current thread.

use std::sync::{Arc, Mutex};

use lambda_runtime::tracing::subscriber;
use lambda_runtime::tracing::subscriber::util::SubscriberInitExt;

/// The log lines of this thread, from INFO up (the tests run on a current-thread runtime, and
/// `handle` spawns nothing).
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Collects what the current thread logs until the guard is dropped.
    pub(crate) fn capture() -> (Logs, lambda_runtime::tracing::dispatcher::DefaultGuard) {
        Self::capture_at(lambda_runtime::tracing::Level::INFO)
    }

    /// Collects what the current thread logs at `level` and up until the guard is dropped.
    pub(crate) fn capture_at(
        level: lambda_runtime::tracing::Level,
    ) -> (Logs, lambda_runtime::tracing::dispatcher::DefaultGuard) {
        let logs = Logs::default();
        let guard = subscriber::fmt()
            .with_writer(logs.clone())
            .with_max_level(level)
            .with_ansi(false)
            .without_time()
            .finish()
            .set_default();
        (logs, guard)
    }

    /// The lines that mention `needle`.
    pub(crate) fn lines_with(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|line| line.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}
