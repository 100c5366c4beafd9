//! Recovering a stuck saga with the command line, as an operator does: a worker with a bug
//! leaves a saga stuck after its pivot, `status` says it waits for an operator, and once a fixed
//! worker runs, `recover` finishes it, running nothing that had succeeded again.

use std::time::Duration;

use crate::binary::{run_binary, text, worker};

pub(crate) async fn a_stuck_saga_is_recovered_after_the_fix(endpoint: &str) {
    // The bug: shipping refuses every command, after the payment (the pivot) went through.
    let broken = worker(endpoint, &[("ORDER_BROKEN_STEP", "ship_order")]);
    let started = run_binary(endpoint, &["start", "o-2"]);
    assert!(started.status.success(), "{}", text(&started));
    let watched = run_binary(endpoint, &["watch", "o-2"]);
    let watch = text(&watched);
    assert_eq!(watched.status.code(), Some(3), "{watch}");
    assert!(
        watch.contains("outcome: STUCK: step `ship_order` gave up after the pivot"),
        "{watch}"
    );
    drop(broken);

    let status =
        String::from_utf8_lossy(&run_binary(endpoint, &["status", "o-2"]).stdout).into_owned();
    assert!(status.starts_with("saga o-2: Stuck\n"), "{status}");
    assert!(
        status.ends_with("waiting for an operator: fix the cause, then `recover o-2`\n"),
        "{status}"
    );

    // The fix is deployed: a worker without the bug.
    let (_fixed, lines) = worker(endpoint, &[]);
    let recovered = run_binary(endpoint, &["recover", "o-2"]);
    // What it prints (the log goes to stderr).
    let recover = String::from_utf8_lossy(&recovered.stdout).into_owned();
    assert!(recovered.status.success(), "{}", text(&recovered));
    assert!(
        recover.starts_with("saga o-2 recovered: ship_order runs again\n"),
        "{recover}"
    );
    assert!(recover.ends_with("outcome: completed\n"), "{recover}");
    let again = run_binary(endpoint, &["recover", "o-2"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("is not stuck"), "{}", text(&again));

    // The fixed worker shipped the order once and ran nothing else: what had succeeded before
    // the saga got stuck did not run again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = lines.lock().unwrap().clone();
    assert_eq!(out.matches("shipping: order-1001").count(), 1, "{out}");
    assert!(!out.contains("inventory:"), "{out}");
    assert!(!out.contains("payments:"), "{out}");
}
