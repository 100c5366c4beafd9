//! The saga command line (`saga::cli`), as the order example exposes it: the offline
//! subcommands in process, and the AWS ones through the example's binary on the local emulator
//! (deploy, a worker, start, watch, status), as a user runs them.

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/order/main.rs"]
mod order;

mod binary;
mod recover;

use binary::{run_binary, text, worker};

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use saga::cli::{Entry, Failure, execute};
use saga_aws::testing::Emulator;

fn sagas() -> Vec<Entry> {
    vec![
        Entry::from(order::order_saga(&[]))
            .example_input(order::order())
            .input_schema(saga::schema::input_schema::<order::Order>()),
    ]
}

/// Runs `args` in process; the exit code and what was written.
fn cli(args: &[&str]) -> (ExitCode, String) {
    let mut out = Vec::new();
    let argv = std::iter::once("order")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    let code = match execute(&sagas(), argv, &mut out) {
        Ok(code) => code,
        Err(Failure::Error(e)) => panic!("`{}` failed: {e}", args.join(" ")),
        Err(Failure::Usage(e)) => panic!("`{}` is bad usage: {e}", args.join(" ")),
    };
    (code, String::from_utf8(out).unwrap())
}

fn error(args: &[&str]) -> String {
    let mut out = Vec::new();
    let argv = std::iter::once("order")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    match execute(&sagas(), argv, &mut out) {
        Err(Failure::Error(e)) => e,
        Err(Failure::Usage(e)) => e.to_string(),
        Ok(code) => panic!("`{}` succeeded ({code:?})", args.join(" ")),
    }
}

#[test]
fn asl_prints_the_state_machine_with_or_without_substitutions() {
    let (_, raw) = cli(&["asl"]);
    let machine: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(machine["StartAt"], "reserve_stock");
    assert!(raw.contains("${InventoryQueueUrl}"));

    let (_, bound) = cli(&[
        "asl",
        "--bind",
        "InventoryQueueUrl=https://q/inventory",
        "--bind",
        "PaymentsQueueUrl=https://q/payments",
        "--bind",
        "ShippingQueueUrl=https://q/shipping",
    ]);
    assert!(!bound.contains("${"), "{bound}");
    assert!(bound.contains("https://q/payments"));
    // Half the bindings is an error that says which one is missing.
    let missing = error(&["asl", "--bind", "InventoryQueueUrl=https://q/inventory"]);
    assert!(missing.contains("PaymentsQueueUrl"), "{missing}");
}

#[test]
fn graph_draws_mermaid_and_dot() {
    let (_, mermaid) = cli(&["graph"]);
    assert!(mermaid.starts_with("flowchart TD"), "{mermaid}");
    let (_, dot) = cli(&["graph", "--format", "dot"]);
    assert!(dot.starts_with("digraph"), "{dot}");
}

/// Graphviz's `dot`, installed with apt (as root or with sudo) when missing, as the other
/// tests install their validators; a clear failure when that is not possible.
fn graphviz() {
    let present = || Command::new("dot").arg("-V").output().is_ok();
    if present() {
        return;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let mut install = if root {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", "apt-get"]);
        sudo
    };
    let installed = install
        .args(["install", "-y", "-q", "graphviz"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        installed && present(),
        "Graphviz's `dot` is missing and apt could not install it: install graphviz"
    );
}

#[test]
fn graph_draws_svg_with_graphviz() {
    graphviz();
    let mut out = Vec::new();
    let argv = ["order", "graph", "--format", "svg"]
        .map(String::from)
        .to_vec();
    match execute(&sagas(), argv, &mut out) {
        Ok(_) => {}
        Err(Failure::Error(e)) => panic!("{e}"),
        Err(Failure::Usage(e)) => panic!("{e}"),
    }
    let svg = String::from_utf8(out).unwrap();
    assert!(svg.contains("<svg"), "{svg}");
    assert!(svg.contains("reserve_stock"), "{svg}");
}

#[test]
fn without_graphviz_svg_is_a_clear_error() {
    let empty = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-tools");
    std::fs::create_dir_all(&empty).unwrap();
    let output = Command::new(binary::binary())
        .args(["graph", "--format", "svg"])
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: cannot run Graphviz's `dot`") && stderr.lines().count() == 1,
        "{stderr}"
    );
}

#[test]
fn cost_prints_every_path_and_the_price() {
    let (_, cost) = cli(&["cost"]);
    assert!(cost.contains("success"), "{cost}");
    assert!(cost.contains("charge_payment fails"), "{cost}");
    assert!(cost.contains("USD / million"), "{cost}");
    assert!(cost.contains("worst case"), "{cost}");
}

#[test]
fn template_writes_yaml_or_json() {
    let (_, yaml) = cli(&["template"]);
    assert!(yaml.starts_with("AWSTemplateFormatVersion"), "{yaml}");
    assert!(yaml.contains("# SendTaskSuccess"), "{yaml}");
    let (_, json) = cli(&[
        "template",
        "--format",
        "json",
        "--trigger",
        r#"{"source":["shop.orders"]}"#,
    ]);
    let template: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        template["Resources"]["TriggerRule"]["Type"],
        "AWS::Events::Rule"
    );
    assert!(error(&["template", "--trigger", "{oops"]).contains("--trigger"));

    // The front door: behind IAM unless told otherwise, with the input's schema as its model.
    let (_, json) = cli(&["template", "--format", "json", "--front-door"]);
    let template: serde_json::Value = serde_json::from_str(&json).unwrap();
    let resources = &template["Resources"];
    assert_eq!(
        resources["ApiStart"]["Properties"]["AuthorizationType"],
        "AWS_IAM"
    );
    assert_eq!(
        resources["ApiInputModel"]["Properties"]["Schema"]["title"],
        "Order"
    );
    let (_, json) = cli(&[
        "template",
        "--format",
        "json",
        "--front-door",
        "--no-iam-authorization",
    ]);
    let template: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        template["Resources"]["ApiStart"]["Properties"]["AuthorizationType"],
        "NONE"
    );
    assert!(error(&["template", "--no-iam-authorization"]).contains("--front-door"));
    // A saga whose input has no schema cannot have a front door, and says what to give.
    let mut out = Vec::new();
    let bare = [Entry::from(order::order_saga(&[]))];
    let argv = ["order", "template", "--front-door"]
        .map(String::from)
        .to_vec();
    match execute(&bare, argv, &mut out) {
        Err(Failure::Error(e)) => assert!(e.contains("Entry::input_schema"), "{e}"),
        other => panic!("a front door without a schema: {other:?}"),
    }
}

#[test]
fn run_injects_failures_in_memory() {
    let (code, out) = cli(&["run"]);
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(out.ends_with("outcome: completed\n"), "{out}");

    let (code, out) = cli(&["run", "--fail", "charge_payment"]);
    assert_eq!(code, ExitCode::from(3));
    assert!(out.contains("ok compensation of reserve_stock"), "{out}");
    assert!(out.contains("outcome: compensated"), "{out}");

    let (code, out) = cli(&["run", "--flaky", "reserve_stock", "--timeout", "ship_order"]);
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(out.contains("ok reserve_stock (attempt 3)"), "{out}");
    assert!(out.contains("ok ship_order (attempt 2)"), "{out}");

    assert!(error(&["run", "--fail", "nope"]).contains("no step `nope`"));
    assert!(error(&["run", "--input", "not json"]).contains("--input"));
}

#[test]
#[should_panic(expected = "`older_version` of saga `order` takes another version than 1")]
fn an_older_version_of_the_same_version_is_a_programming_error() {
    let _ = Entry::from(order::order_saga(&[])).older_version(order::order_saga(&[]));
}

#[test]
#[should_panic(
    expected = "`older_version` takes an older version of saga `order`, not saga `trip`"
)]
fn an_older_version_of_another_saga_is_a_programming_error() {
    let trip = order::order_saga(&[]).renamed("trip").unwrap();
    let _ = Entry::from(order::order_saga(&[])).older_version(trip);
}

#[test]
fn errors_and_help_are_clear() {
    assert!(error(&["frobnicate"]).contains("unrecognized subcommand"));
    assert!(error(&["cost", "--saga", "invoice"]).contains("no saga `invoice`"));
    for sub in [
        "asl", "graph", "cost", "template", "deploy", "versions", "start", "watch", "status",
        "recover", "worker", "run",
    ] {
        let help = error(&[sub, "--help"]);
        assert!(
            help.contains("Example"),
            "`{sub} --help` has no example:\n{help}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_a_worker_start_watch_and_status_on_the_emulator() {
    let endpoint = Emulator::shared().endpoint().to_owned();
    // Not deployed yet: a clear error.
    let status = run_binary(&endpoint, &["status", "o-1"]);
    assert!(!status.status.success());
    assert!(
        text(&status).contains("is not deployed here"),
        "{}",
        text(&status)
    );

    let deployed = run_binary(
        &endpoint,
        &[
            "deploy",
            "--create-queues",
            "--role-arn",
            Emulator::ROLE_ARN,
        ],
    );
    assert!(deployed.status.success(), "{}", text(&deployed));
    assert!(
        text(&deployed).contains("queue inventory: http"),
        "{}",
        text(&deployed)
    );
    assert!(text(&deployed).contains("(Created)"), "{}", text(&deployed));
    let again = run_binary(
        &endpoint,
        &[
            "deploy",
            "--create-queues",
            "--role-arn",
            Emulator::ROLE_ARN,
        ],
    );
    assert!(text(&again).contains("(Unchanged)"), "{}", text(&again));
    // The same revision is the same version: new sagas start on it through the alias.
    assert!(
        text(&again).contains(":stateMachine:order:1\nnew sagas start on ")
            && text(&again).ends_with(":stateMachine:order:live\n"),
        "{}",
        text(&again)
    );
    let versions = text(&run_binary(&endpoint, &["versions"]));
    assert!(
        versions.ends_with(
            "this program has the handlers of saga `order` version 1\nno saga in flight\n"
        ),
        "{versions}"
    );

    let (mut worker, lines) = worker(&endpoint, &[]);

    let started = run_binary(&endpoint, &["start", "o-1"]);
    assert!(started.status.success(), "{}", text(&started));
    assert!(
        text(&started).contains("saga o-1 started"),
        "{}",
        text(&started)
    );
    let twice = run_binary(&endpoint, &["start", "o-1"]);
    assert!(text(&twice).contains("already started"), "{}", text(&twice));

    let watched = run_binary(&endpoint, &["watch", "o-1"]);
    let watch = text(&watched);
    assert!(watched.status.success(), "{watch}");
    // Each step once, in order (under a heavy load a step may need a second attempt).
    let done: Vec<&str> = watch
        .lines()
        .filter_map(|l| l.strip_prefix("ok ")?.split(' ').next())
        .collect();
    assert_eq!(
        done,
        ["reserve_stock", "charge_payment", "ship_order"],
        "{watch}"
    );
    assert!(watch.ends_with("outcome: completed\n"), "{watch}");

    let status = run_binary(&endpoint, &["status", "o-1"]);
    assert!(
        text(&status).starts_with("saga o-1: Succeeded"),
        "{}",
        text(&status)
    );

    // Ctrl-C stops the worker gracefully.
    let pid = worker.0.id().to_string();
    let signalled = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(signalled.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(status) = worker.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not stop within 30 s of Ctrl-C"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The reader has the rest once the pipe closes.
    std::thread::sleep(Duration::from_millis(200));
    let out = lines.lock().unwrap().clone();
    assert!(exit.success(), "{exit:?}: {out}");
    assert!(out.contains("stopping"), "{out}");
    // One worker per participant queue, each effect applied once. (SQS delivers at least once:
    // on a loaded machine a command may arrive twice, and the second delivery is answered from
    // the idempotency store without running the step again.)
    for effect in [
        "inventory: reserved",
        "payments: charged",
        "shipping: order-1001",
    ] {
        assert_eq!(out.matches(effect).count(), 1, "{effect}: {out}");
    }
    let stats: Vec<&str> = out.lines().filter(|l| l.contains(" received, ")).collect();
    assert_eq!(stats.len(), 3, "{out}");
    for line in stats {
        assert!(line.contains(" 0 failed, 0 malformed, "), "{out}");
        assert!(!line.contains(": 0 received"), "{out}");
    }

    // On the same deployment (one test: the example's saga has one name), a saga gets stuck on
    // a broken worker and is recovered once a fixed one runs.
    recover::a_stuck_saga_is_recovered_after_the_fix(&endpoint).await;
}
