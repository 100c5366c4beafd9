use serde_json::json;

use super::*;
use crate::{Saga, Step, StepContext, StepError};

struct Noop;

impl Step for Noop {
    type Input = Value;
    type Output = ();

    async fn execute(&self, _: &StepContext<'_>, _: Value) -> Result<(), StepError> {
        Ok(())
    }
}

impl crate::Compensable for Noop {
    async fn compensate(
        &self,
        _: &StepContext<'_>,
        _: Value,
        _: Option<()>,
    ) -> Result<(), StepError> {
        Ok(())
    }
}

/// `a`; the group `g` (branches x: `x1` then `x2`, y: `y1`, z: `z1`); `b`; the group `h`
/// (two branches: `p`, `q`); the pivot `c`.
fn two_groups() -> Saga {
    Saga::builder("s")
        .compensable("a", Noop)
        .compensable("x1", Noop)
        .in_branch("g", "x")
        .compensable("x2", Noop)
        .in_branch("g", "x")
        .compensable("y1", Noop)
        .in_branch("g", "y")
        .compensable("z1", Noop)
        .in_branch("g", "z")
        .compensable("b", Noop)
        .compensable("p", Noop)
        .in_branch("h", "p")
        .compensable("q", Noop)
        .in_branch("h", "q")
        .pivot("c", Noop)
        .build()
        .unwrap()
}

#[test]
fn a_step_shares_the_limit_with_every_copy_a_later_group_result_carries() {
    let saga = two_groups();
    // a: before both groups (3 at most); g's steps: 3 branches times h's 2; b: before h;
    // h's steps: 2; c: after every group.
    assert_eq!(copies(saga.definition()), [3, 6, 6, 6, 6, 2, 2, 2, 1]);
    assert_eq!(input_copies(saga.definition()), 3);
    let linear = Saga::builder("l")
        .compensable("a", Noop)
        .pivot("c", Noop)
        .build()
        .unwrap();
    assert_eq!(copies(linear.definition()), [1, 1]);
    assert_eq!(input_copies(linear.definition()), 1);
}

#[test]
fn every_group_result_the_budgets_allow_fits_the_limit_with_room_for_an_error() {
    for copies in 1..=12 {
        let each = budget(copies);
        // `copies` documents in an array, and an error added to the largest merge of them.
        let array = copies * each + copies + 1;
        assert!(array + RESERVE <= MAX_PAYLOAD_BYTES, "{copies}");
        assert!(budget(copies) > budget(copies + 1));
    }
    assert_eq!(budget(1), MAX_PAYLOAD_BYTES - RESERVE - 2);
}

#[test]
fn output_bytes_counts_what_the_entry_adds_to_the_compact_json() {
    for document in [
        json!({}),
        json!({ "order": 1 }),
        json!({ "order": 1, "steps": {} }),
        json!({ "order": 1, "steps": { "a": [1, 2] } }),
    ] {
        let output = json!({ "id": "r-1", "note": "a \"quoted\" line\n" });
        let mut grown = document.clone();
        crate::protocol::record_output(&mut grown, "reserve", output.clone());
        assert_eq!(
            payload_size(&document) + output_bytes("reserve", payload_size(&output), &document),
            payload_size(&grown),
            "{document}"
        );
    }
}

#[test]
fn an_input_is_held_to_the_share_of_its_largest_group() {
    let saga = two_groups();
    let fits = json!({ "blob": "x".repeat(budget(3) - 20) });
    assert_eq!(check_input(saga.definition(), &fits), Ok(()));
    let over = json!({ "blob": "x".repeat(budget(3)) });
    let err = check_input(saga.definition(), &over).unwrap_err();
    assert!(
        matches!(err, LimitError::DocumentTooLarge { copies: 3, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("one copy per branch (3 here)"),
        "{err}"
    );
    // The same input fits a saga without groups.
    let linear = Saga::builder("l").pivot("c", Noop).build().unwrap();
    assert_eq!(check_input(linear.definition(), &over), Ok(()));
}

#[test]
fn cut_escaped_keeps_the_longest_prefix_whose_json_fits() {
    let text = "a\"b\u{1}é\n".to_owned();
    // widths: a 1, " 2, b 1, \u0001 6, é 2, \n 2.
    for (width, kept) in [
        (0, ""),
        (2, "a"),
        (3, "a\""),
        (9, "a\"b"),
        (10, "a\"b\u{1}"),
    ] {
        let mut cut = text.clone();
        cut_escaped(&mut cut, width);
        assert_eq!(cut, kept, "{width}");
        assert!(payload_size(&cut) - 2 <= width);
    }
    let mut whole = text.clone();
    cut_escaped(&mut whole, 14);
    assert_eq!(whole, text);
}

#[test]
fn a_long_failure_is_cut_to_the_cause_limit_on_the_wire_and_a_short_one_is_kept() {
    let short = crate::StepFailure {
        kind: crate::FailureKind::Terminal,
        code: "SoldOut".into(),
        message: "nothing left".into(),
    };
    assert_eq!(short.clone().bounded(), short);
    for message in ["x".repeat(100_000), "\"\u{2}".repeat(50_000)] {
        let long = crate::StepFailure {
            code: "C".repeat(1_000),
            message,
            ..short.clone()
        };
        let bounded = long.bounded();
        let (_, cause) = bounded.to_task_failure();
        assert!(payload_size(&cause) <= MAX_CAUSE_BYTES, "{}", cause.len());
        assert!(
            payload_size(&cause) > MAX_CAUSE_BYTES - 8,
            "cut no shorter than needed"
        );
        assert_eq!(bounded.code.len(), 256);
        assert!(bounded.message.ends_with(" [cut]"));
        assert!(
            payload_size(&bounded.to_asl_error()) + r#","error":"#.len() <= ERROR_BYTES,
            "the reserve covers the error a Catch adds"
        );
    }
}

#[test]
fn the_envelope_of_the_longest_command_fits_its_reserve() {
    let long = "n".repeat(80);
    let command = crate::protocol::Command {
        v: crate::protocol::COMMAND_VERSION,
        saga: long.clone(),
        saga_version: Some(u32::MAX),
        saga_id: long.clone(),
        step: long.clone(),
        action: crate::Action::Compensate,
        idempotency_key: format!("{long}/{long}/compensate"),
        retry_count: u32::MAX,
        input: json!({}),
        task_token: "t".repeat(1_024),
        traceparent: Some(format!("00-{}-{}-01", "a".repeat(32), "b".repeat(16))),
    };
    let envelope = payload_size(&command) - 2;
    // With the Task's `QueueUrl` around it (about 100 bytes).
    assert!(envelope + 256 <= ENVELOPE_BYTES, "{envelope}");
}
