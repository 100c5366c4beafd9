//! The local AWS emulators for tests (feature `testing`): one server per test process and
//! emulator, on a free port, started by its launcher in `saga-aws/emulator/`: moto
//! (`moto-server`, which installs moto the first time), the one the suite runs on, and fakecloud
//! (`fakecloud-server`, which builds our small server on fakecloud's crates the first time), the
//! second oracle being brought in (see `saga-aws/emulator/FAKECLOUD.md`).
//!
//! The server exits by itself when the test process ends, however it ends (a failed assertion,
//! a panic, a kill): it watches the process that started it. If it cannot start, the test fails
//! with the reason; it never skips.

pub mod conformance;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::AwsError;
use aws_sdk_sfn::config::Credentials;

/// Which emulator: both launchers print `ready <endpoint>` and exit with their owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EmulatorKind {
    /// moto 5.2.5 with the launcher's fixes (`moto-server`): the one the suite runs on.
    Moto,
    /// fakecloud 0.51.0's services in our small server (`fakecloud-server`).
    Fakecloud,
}

impl EmulatorKind {
    /// Its launcher in `saga-aws/emulator/`.
    fn script(self) -> &'static str {
        match self {
            EmulatorKind::Moto => "moto-server",
            EmulatorKind::Fakecloud => "fakecloud-server",
        }
    }

    /// How long its first start may take: moto installs into a venv (a minute or so);
    /// fakecloud's server is built (~15 CPU-minutes cold on a machine that has none yet).
    fn start_timeout(self) -> Duration {
        match self {
            EmulatorKind::Moto => Duration::from_secs(300),
            EmulatorKind::Fakecloud => Duration::from_secs(45 * 60),
        }
    }
}

/// A running emulator.
#[derive(Debug)]
pub struct Emulator {
    endpoint: String,
    child: Mutex<Child>,
}

impl Emulator {
    /// The moto emulator of this test process, started on first use.
    ///
    /// # Panics
    ///
    /// If the emulator cannot be installed or started, with the reason.
    pub fn shared() -> &'static Emulator {
        Self::shared_of(EmulatorKind::Moto)
    }

    /// The emulator of `kind` of this test process, started on first use.
    ///
    /// # Panics
    ///
    /// If the emulator cannot be installed (or built) or started, with the reason.
    pub fn shared_of(kind: EmulatorKind) -> &'static Emulator {
        static MOTO: OnceLock<Emulator> = OnceLock::new();
        static FAKECLOUD: OnceLock<Emulator> = OnceLock::new();
        let shared = match kind {
            EmulatorKind::Moto => &MOTO,
            EmulatorKind::Fakecloud => &FAKECLOUD,
        };
        shared.get_or_init(|| {
            Emulator::start_kind(kind)
                .unwrap_or_else(|e| panic!("the AWS emulator ({kind:?}) did not start: {e}"))
        })
    }

    /// Starts a new moto emulator on a free port and waits until it answers.
    pub fn start() -> Result<Emulator, String> {
        Self::start_kind(EmulatorKind::Moto)
    }

    /// Starts a new emulator of `kind` on a free port and waits until it answers.
    pub fn start_kind(kind: EmulatorKind) -> Result<Emulator, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        Self::start_kind_on(kind, port)
    }

    /// Starts a new moto emulator on `port` (one that stopped there, say: a restart, with none
    /// of its state) and waits until it answers.
    pub fn start_on(port: u16) -> Result<Emulator, String> {
        Self::start_kind_on(EmulatorKind::Moto, port)
    }

    /// Starts a new emulator of `kind` on `port` and waits until it answers.
    pub fn start_kind_on(kind: EmulatorKind, port: u16) -> Result<Emulator, String> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("emulator")
            .join(kind.script());
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .arg(port.to_string())
            .env("SAGA_EMULATOR_OWNER", std::process::id().to_string());
        // moto is installed once per target directory: the tests' own, whichever crate they
        // belong to. (fakecloud's server is built once per machine, outside any target.)
        if kind == EmulatorKind::Moto
            && std::env::var_os("SAGA_MOTO_VENV").is_none()
            && let Some(venv) = std::env::current_exe()
                .ok()
                .and_then(|exe| venv_beside(&exe))
        {
            command.env("SAGA_MOTO_VENV", venv);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(endpoint) = line.strip_prefix("ready ") {
                    let _ = tx.send(Ok(endpoint.to_owned()));
                    return;
                }
            }
            let _ = tx.send(Err(
                "the emulator script ended before it was ready (see its messages above)".to_owned(),
            ));
        });
        let start_timeout = kind.start_timeout();
        match rx.recv_timeout(start_timeout) {
            Ok(Ok(endpoint)) => Ok(Emulator {
                endpoint,
                child: Mutex::new(child),
            }),
            Ok(Err(e)) => {
                let _ = child.kill();
                Err(e)
            }
            Err(_) => {
                let _ = child.kill();
                Err(format!(
                    "the emulator was not ready within {start_timeout:?}"
                ))
            }
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An SDK configuration for the emulator: its endpoint, dummy credentials, `us-east-1`, and
    /// the timeouts of [`crate::config::timeouts`].
    pub async fn config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "test",
                "test",
                None,
                None,
                "saga-emulator",
            ))
            .timeout_config(crate::config::timeouts())
            .load()
            .await
    }

    /// A name no other test in this run uses: `prefix-<pid>-<n>`.
    pub fn unique(prefix: &str) -> String {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{prefix}-{}-{n}", std::process::id())
    }

    /// The IAM role ARN the emulator accepts for state machines.
    pub const ROLE_ARN: &'static str = "arn:aws:iam::123456789012:role/saga-test";
}

impl Emulator {
    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the endpoint ends with its port")
    }

    /// Stops the emulator and waits until its port is free: SIGTERM to the launcher, which
    /// stops the server (a SIGKILL would leave the server to its owner-exit watch), then
    /// SIGKILL if it lingers.
    pub fn stop(self) {
        drop(self);
    }
}

/// `<target>/moto-venv` for a binary built under `<target>` (a test in `<target>/debug/deps`,
/// an example in `<target>/debug/examples`): the directory that holds cargo's `CACHEDIR.TAG`.
fn venv_beside(exe: &Path) -> Option<PathBuf> {
    exe.ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(|target| target.join("moto-venv"))
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let Ok(child) = self.child.get_mut() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Takes the next message off the queue at `queue_url`: long polls for at most `within`,
/// deletes the message it receives and returns its body, or `None` if none came. For a test
/// that plays a participant, or Lambda's event source mapping.
pub async fn take_message(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    within: Duration,
) -> Result<Option<String>, AwsError> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let wait = i32::try_from(left.as_secs().clamp(1, 20)).unwrap_or(20);
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(1)
            .wait_time_seconds(wait)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ReceiveMessage", e))?;
        if let Some(message) = out.messages.unwrap_or_default().into_iter().next() {
            if let Some(handle) = &message.receipt_handle {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("DeleteMessage", e))?;
            }
            return Ok(Some(message.body.unwrap_or_default()));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_venv_goes_in_the_target_directory_of_the_binary() {
        let root = std::env::temp_dir().join(format!("saga-venv-{}", std::process::id()));
        let target = root.join("other-crate/target");
        std::fs::create_dir_all(target.join("debug/deps")).unwrap();
        std::fs::write(
            target.join("CACHEDIR.TAG"),
            "Signature: 8a477f597d28d172789f06886806bc55",
        )
        .unwrap();
        let found = venv_beside(&target.join("debug/deps/e2e-0123"));
        let none = venv_beside(&root.join("elsewhere/bin/tool"));
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(found, Some(target.join("moto-venv")));
        assert_eq!(none, None);
    }
}
