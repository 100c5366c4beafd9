//! Clear errors at the AWS edge, as the command line reports them: an endpoint that accepts and
//! never answers, one that answers something that is no AWS answer (a 403 page), one that
//! refuses the connection, and an endpoint URL that is no URL. Each is one line on stderr that
//! names the endpoint, within the configured timeouts. (The servers are the test's own, on
//! loopback.)

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/order/main.rs"]
mod order;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use saga::cli::{Entry, Failure, execute_with};

/// The error of `order status o-1` against `endpoint`, with attempts of at most 1 s and
/// operations of at most 3 s; and how long it took.
fn status_error(endpoint: &str) -> (String, Duration) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = runtime.block_on(
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test", "test", None, None, "edge",
            ))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(1))
                    .operation_attempt_timeout(Duration::from_secs(1))
                    .operation_timeout(Duration::from_secs(3))
                    .build(),
            )
            .load(),
    );
    drop(runtime);
    let sagas = [Entry::from(order::order_saga(&[]))];
    let args = ["order", "status", "o-1"].map(String::from).to_vec();
    let started = Instant::now();
    let mut out = Vec::new();
    match execute_with(&sagas, args, &mut out, Some(config)) {
        Err(Failure::Error(e)) => (e, started.elapsed()),
        other => panic!("status against {endpoint} did not fail: {other:?}"),
    }
}

/// A server on loopback that answers every connection with `answer` (or holds it, silent,
/// when `answer` is `None`), for as long as the test runs.
fn server(answer: Option<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in listener.incoming().map_while(Result::ok) {
            match answer {
                Some(answer) => {
                    let mut buffer = [0; 4096];
                    let _ = stream.read(&mut buffer);
                    let _ = stream.write_all(answer.as_bytes());
                }
                None => held.push(stream),
            }
        }
    });
    format!("http://{address}")
}

fn assert_one_line(error: &str) {
    assert!(!error.contains('\n'), "more than one line: {error}");
    assert!(!error.contains("Request {"), "a debug dump: {error}");
}

#[test]
fn an_endpoint_that_never_answers_fails_within_the_timeouts_naming_it() {
    let endpoint = server(None);
    let (error, took) = status_error(&endpoint);
    assert_one_line(&error);
    assert!(error.contains(&format!("(endpoint {endpoint})")), "{error}");
    assert!(error.contains("timeout"), "{error}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn an_answer_that_is_no_aws_answer_names_its_http_status() {
    let endpoint = server(Some(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: 35\r\nConnection: close\r\n\r\n<html><body>Forbidden</body></html>",
    ));
    let (error, _) = status_error(&endpoint);
    assert_one_line(&error);
    assert!(
        error.contains("HTTP 403: not an AWS answer: <html>"),
        "{error}"
    );
    assert!(error.contains(&format!("(endpoint {endpoint})")), "{error}");
}

#[test]
fn a_refused_connection_names_the_endpoint() {
    let endpoint = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let (error, _) = status_error(&endpoint);
    assert_one_line(&error);
    assert!(error.contains("Connection refused"), "{error}");
    assert!(error.contains(&format!("(endpoint {endpoint})")), "{error}");
}

#[test]
fn an_endpoint_url_that_is_no_url_is_one_line() {
    let binary = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("debug/examples/order");
    let out = std::process::Command::new(&binary)
        .args(["status", "o-1"])
        .env("AWS_ENDPOINT_URL", "not a url")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", binary.display()));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        "error: AWS_ENDPOINT_URL `not a url` is not a URL: give http://HOST:PORT or https://HOST"
    );
}
