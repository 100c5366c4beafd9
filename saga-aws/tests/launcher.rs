//! The emulator's launcher (`saga-aws/emulator/moto-server`) as the tests and a user's scripts
//! run it: it stops with its owner when it has one, and otherwise runs until it is stopped.

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use saga_aws::testing::Emulator;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/emulator/moto-server");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn answers(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Whether `check` holds within `seconds`, looking every 100 ms.
fn within(seconds: u64, check: impl Fn() -> bool) -> bool {
    (0..seconds * 10).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        check()
    })
}

/// The venv the tests of this crate use (`Emulator::shared` installs it).
fn venv() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .expect("a test runs from under its target directory");
    target.join("moto-venv")
}

/// The emulator never outlives the process that started it: here the "test process" is a
/// `sleep`, stopped once the server answers, and the server must stop soon after. (The owner
/// used to be a `sleep 2`, which a loaded machine outlasted while moto was still loading.)
#[test]
fn the_emulator_exits_when_its_owner_exits() {
    Emulator::shared(); // installs moto if needed, so the start below is quick
    let mut owner = Command::new("sleep").arg("600").spawn().unwrap();
    let stop_owner = Terminate(owner.id());
    let port = free_port();
    let mut server = Command::new("bash")
        .arg(SCRIPT)
        .arg(port.to_string())
        .env("SAGA_EMULATOR_OWNER", owner.id().to_string())
        .env("SAGA_MOTO_VENV", venv())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Loading moto (and the launcher's fixes to its interpreter) takes a few seconds, more on a
    // loaded machine.
    let up = within(60, || answers(port));
    if !up {
        let _ = server.kill();
    }
    assert!(up, "the emulator did not start on port {port}");
    drop(stop_owner);
    owner.wait().unwrap();
    let down = within(5, || !answers(port));
    // The server goes first, then its script: give the script a moment to end by itself.
    for _ in 0..50 {
        if server.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.kill();
    assert!(down, "the emulator outlived its owner");
    let status = server.wait().unwrap();
    assert!(
        status.success() || status.code().is_some(),
        "the script ended: {status}"
    );
}

/// Stops the process with this id (SIGTERM) when dropped, also when the test fails.
struct Terminate(u32);

impl Drop for Terminate {
    fn drop(&mut self) {
        // Quiet: the process may have ended already.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// Started by hand (no owner), from a script that goes on or a shell that exits, the emulator
/// runs until its launcher is stopped. It used to watch the shell that started it and die
/// with it.
#[test]
fn started_by_hand_it_outlives_its_shell_until_it_is_stopped() {
    Emulator::shared(); // installs moto if needed, so the start below is quick
    let port = free_port();
    // A shell starts it in the background, prints its process id and exits at once.
    let started = Command::new("bash")
        .arg("-c")
        .arg(format!("bash {SCRIPT} {port} >/dev/null 2>&1 & echo $!"))
        .env_remove("SAGA_EMULATOR_OWNER")
        .env("SAGA_MOTO_VENV", venv())
        .output()
        .unwrap();
    let pid: u32 = String::from_utf8_lossy(&started.stdout)
        .trim()
        .parse()
        .expect("the launcher's process id");
    let launcher = Terminate(pid);
    assert!(
        within(30, || answers(port)),
        "the emulator did not start on port {port}"
    );
    // Its shell is long gone: it goes on answering.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        answers(port),
        "the emulator died with the shell that started it"
    );
    drop(launcher);
    assert!(
        within(10, || !answers(port)),
        "the emulator outlived its stopped launcher"
    );
}

/// An exception moto does not handle is an HTTP 500 page to the client ("not an AWS answer"),
/// and its traceback is written to the launcher's standard error, which a test inherits, even
/// with moto's own log going nowhere: a test that meets a 500 says why. Here the exception is
/// moto's own `TypeError` on an execution ARN that is a number.
#[test]
fn an_error_moto_does_not_handle_reaches_the_launchers_stderr_with_its_traceback() {
    use std::io::{Read, Write};
    Emulator::shared(); // installs moto if needed, so the start below is quick
    let port = free_port();
    let errors = std::env::temp_dir().join(format!("saga-launcher-{}-stderr", std::process::id()));
    let mut launcher = Command::new("bash")
        .arg(SCRIPT)
        .arg(port.to_string())
        .env("SAGA_EMULATOR_OWNER", std::process::id().to_string())
        .env("SAGA_MOTO_VENV", venv())
        .env_remove("SAGA_MOTO_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&errors).unwrap())
        .spawn()
        .unwrap();
    let stop = Terminate(launcher.id());
    assert!(
        within(60, || answers(port)),
        "the emulator did not start on port {port}"
    );
    let body = r#"{"executionArn": 5}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         X-Amz-Target: AWSStepFunctions.GetExecutionHistory\r\n\
         Content-Type: application/x-amz-json-1.0\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20261204/us-east-1/states/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 500"),
        "moto answered: {answer}"
    );
    let reported = within(10, || {
        std::fs::read_to_string(&errors).is_ok_and(|e| e.contains("TypeError"))
    });
    drop(stop);
    let _ = launcher.wait();
    let stderr = std::fs::read_to_string(&errors).unwrap();
    let _ = std::fs::remove_file(&errors);
    assert!(
        reported,
        "no traceback on the launcher's stderr: {stderr:?}"
    );
    assert!(
        stderr.contains("moto: unhandled error answering AWSStepFunctions.GetExecutionHistory")
            && stderr.contains("Traceback (most recent call last)"),
        "the report names the action and has the traceback: {stderr}"
    );
}

/// The second emulator's launcher (`saga-aws/emulator/fakecloud-server`) builds fakecloud's
/// server once per machine (minutes, the first time), starts it, says `ready` once its health
/// check answers with the services the tests use, and never outlives its owner.
#[test]
fn fakecloud_starts_answers_and_exits_with_its_owner() {
    use std::io::{BufRead, BufReader, Read, Write};
    const FAKECLOUD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/emulator/fakecloud-server");
    let mut owner = Command::new("sleep").arg("3600").spawn().unwrap();
    let stop_owner = Terminate(owner.id());
    let port = free_port();
    let mut launcher = Command::new("bash")
        .arg(FAKECLOUD)
        .arg(port.to_string())
        .env("SAGA_EMULATOR_OWNER", owner.id().to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stop_launcher = Terminate(launcher.id());
    // The first line is `ready <endpoint>` (after the build, if this machine has none yet), or
    // nothing if it failed (its reason is on stderr, which the test shows).
    let mut ready = String::new();
    BufReader::new(launcher.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(
        ready.trim(),
        format!("ready http://127.0.0.1:{port}"),
        "the launcher did not start fakecloud"
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /_fakecloud/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut health = String::new();
    stream.read_to_string(&mut health).unwrap();
    for service in ["states", "sqs", "dynamodb", "events", "sts"] {
        assert!(
            health.contains(&format!("\"{service}\"")),
            "fakecloud serves {service}: {health}"
        );
    }
    drop(stop_owner);
    owner.wait().unwrap();
    let down = within(10, || !answers(port));
    let launcher = std::sync::Mutex::new(launcher);
    let ended = within(10, || {
        launcher.lock().unwrap().try_wait().unwrap().is_some()
    });
    drop(stop_launcher);
    let _ = launcher.lock().unwrap().wait();
    assert!(down, "fakecloud outlived its owner");
    assert!(ended, "the launcher outlived its server");
}
