//! The semantic lock (a compensated step refuses every later execute) on both idempotency
//! stores and both engines: the in-memory executor on the paused clock, and Step Functions on
//! the emulator through the conformance harness.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use saga::invocation::{codes, run_idempotent};
use saga::{Action, IdempotencyKey, InMemoryExecutor, InvocationResult, PayloadHash, Saga};
use saga_aws::testing::conformance::{self, HEARTBEAT_SECONDS, TIMEOUT_SECONDS};
use serde_json::json;

use super::{
    Case, Ledger, StoreKind, check_no_execute_after_compensation, paused_runtime, step_name,
};

const SAGA: &str = "lock";

/// The semantic lock on `kind`'s store, in memory: the case runs; no execute applied after its
/// step's compensation; then a late execute of every step, with any payload, neither runs nor
/// answers anything but `Compensated` where that step's compensation ran.
pub fn check_the_lock(case: &Case, kind: StoreKind) -> Result<(), TestCaseError> {
    let ledger = Arc::new(Ledger::default());
    let store = kind.store();
    let saga_id = kind.saga_id();
    let executor = InMemoryExecutor::builder()
        .saga(case.shape.build(SAGA, &ledger))
        .store(store.clone())
        .faults(case.plan())
        .build();
    let rt = paused_runtime();
    let report = rt
        .block_on(executor.run(SAGA, &saga_id, &case.input(&saga_id)))
        .expect("the executor runs the saga to an outcome");
    let effects = ledger.of(&saga_id);
    check_no_execute_after_compensation(&effects)
        .map_err(|e| TestCaseError::fail(format!("on the {kind:?} store: {e}")))?;
    for index in 0..case.shape.steps.len() {
        let step = step_name(index);
        // The compensation ran through the store: its handler applied its effect, or it
        // answered a success.
        let compensated = effects
            .iter()
            .any(|e| e.step == step && e.action == Action::Compensate)
            || report.trace.0.iter().any(|i| {
                i.step == step
                    && i.action == Action::Compensate
                    && i.result == InvocationResult::Succeeded
            });
        let key = IdempotencyKey::new(&saga_id, &step, Action::Execute);
        let ran = AtomicBool::new(false);
        let late = rt.block_on(run_idempotent(
            &*store,
            &key,
            PayloadHash::of(&json!({ "late": step })),
            Duration::from_secs(5),
            |_| async {
                ran.store(true, Ordering::SeqCst);
                Ok(json!(null))
            },
        ));
        if compensated {
            prop_assert!(
                !ran.load(Ordering::SeqCst),
                "on the {:?} store, a late execute of `{}` ran after its compensation",
                kind,
                step
            );
            let code = late.map_err(|f| f.code);
            prop_assert_eq!(
                code,
                Err(codes::COMPENSATED.to_owned()),
                "the late execute of `{}` on the {:?} store",
                step,
                kind
            );
        }
    }
    Ok(())
}

/// `count` random cases drawn from `strategy` with `seed`.
pub fn draw<S: Strategy>(strategy: S, seed: u64, count: usize) -> Vec<S::Value> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    (0..count)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("cases generate")
                .current()
        })
        .collect()
}

/// `case` as the conformance harness runs it on Step Functions: the emulator's timing (every
/// step's timeout and heartbeat those of the harness, at most two retries a second apart, as
/// Step Functions waits for real) and no crash position (Step Functions does not crash).
pub fn on_step_functions(case: &Case) -> conformance::Case {
    let saga = case.shape.build(SAGA, &Arc::new(Ledger::default()));
    let mut definition = saga.definition().clone();
    for step in &mut definition.steps {
        step.set_timing(Some(TIMEOUT_SECONDS), Some(HEARTBEAT_SECONDS));
        for policy in [&mut step.retry, &mut step.compensation_retry] {
            policy.max_attempts = policy.max_attempts.min(2);
            policy.interval_seconds = 1;
            policy.max_delay_seconds = Some(2);
        }
    }
    let handlers = (0..definition.steps.len())
        .map(|i| saga.handler_at(i).clone())
        .collect();
    let mut plan = case.plan();
    plan.crash_at = None;
    conformance::Case {
        saga: Saga::from_parts(definition, handlers).expect("the timing keeps the saga valid"),
        plan,
        input: case.input("case"),
    }
}
