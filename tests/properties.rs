//! Property tests of the in-memory executor over random saga shapes (1 to 12 steps, kinds
//! obeying the pivot rules, random policies) and random fault plans. Each property is checked
//! against the ledger the test participants keep (every applied effect, keyed by idempotency
//! key) and against an oracle that models the saga semantics independently of the executor.
//!
//! 256 cases per property by default; `PROPTEST_CASES=2000 cargo test --test properties` raises
//! it. A failure shrinks to a small saga and fault plan, printed as a `Case`.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::Config;
use saga::testing::{FaultEffect, FaultPlan};
use saga::{
    Action, ExecutorError, InMemoryExecutor, InMemoryIdempotencyStore, InvocationResult,
    JitterStrategy, Outcome, SagaEvent, SagaLog, SagaReport,
};
use saga_aws::testing::conformance::Conformance;
use support::{
    Case, Effect, Ledger, StoreKind, case, check_atomicity, check_no_execute_after_compensation,
    check_prediction, check_the_lock, draw, executed_after_compensation, on_step_functions,
    paused_runtime, step_action, timed_case,
};

const SAGA: &str = "prop";

/// Runs one saga of `case` with `plan` on a fresh executor; returns the report and the ledger.
fn run_once(case: &Case, plan: FaultPlan, saga_id: &str) -> (SagaReport, Vec<Effect>) {
    let ledger = Arc::new(Ledger::default());
    let executor = InMemoryExecutor::builder()
        .saga(case.shape.build(SAGA, &ledger))
        .faults(plan)
        .build();
    let report = paused_runtime()
        .block_on(executor.run(SAGA, saga_id, &case.input(saga_id)))
        .expect("the executor runs the saga to an outcome");
    (report, ledger.of(saga_id))
}

proptest! {
    #![proptest_config(Config::default())]

    /// Atomicity and idempotency: Completed applied every step once; Compensated undid every
    /// applied effect once in reverse order; CompensationFailed only when an invocation gave
    /// up, naming it; duplicates and lost answers never apply an effect twice.
    #[test]
    fn atomicity_and_idempotency(case in case(1, 12)) {
        let (report, effects) = run_once(&case, case.plan(), "saga-1");
        check_atomicity(&case, &report, &effects)?;
        check_prediction(&case, &report, &effects, true)?;
    }

    /// The faults timing decides, whatever the timing: late executes (held back, their step
    /// timed out, delivered again after the saga's end) and slow handlers (still running when
    /// a sibling branch fails, so the group's compensation waits for them). Atomicity and
    /// idempotency as above, and no execute applies after its step's compensation.
    #[test]
    fn late_and_slow_executes_never_apply_after_their_compensation(case in timed_case(1, 12)) {
        let (report, effects) = run_once(&case, case.plan(), "saga-1");
        check_atomicity(&case, &report, &effects)?;
        check_no_execute_after_compensation(&effects)?;
    }

    /// No effect after its compensation (the semantic lock), on both stores: after a saga has
    /// ended, an execute of any step delivered late (a stray or delayed command, with any
    /// payload) never runs where that step's compensation ran, and answers `Compensated`; and
    /// no late or slow execute during the run applied after its compensation.
    #[test]
    fn no_execute_runs_after_its_compensation(case in timed_case(1, 12)) {
        for kind in StoreKind::ALL {
            check_the_lock(&case, kind)?;
        }
    }

    /// Recovery of a stuck saga: once its faults are gone (a new executor on the same log and
    /// store, without the fault plan, as after an operator's fix), `recover` finishes every
    /// stuck saga, `Completed` or `Compensated`; over both runs no effect is applied twice, and
    /// a compensated saga has undone every effect it applied. A saga that is not stuck is
    /// refused, and nothing runs.
    #[test]
    fn a_stuck_saga_recovers_once_its_faults_are_gone(case in case(1, 12)) {
        let ledger = Arc::new(Ledger::default());
        let log = SagaLog::new();
        let store = Arc::new(InMemoryIdempotencyStore::new());
        let executor = |plan: Option<FaultPlan>| {
            let builder = InMemoryExecutor::builder()
                .saga(case.shape.build(SAGA, &ledger))
                .log(log.clone())
                .store(store.clone());
            match plan {
                Some(plan) => builder.faults(plan),
                None => builder,
            }
            .build()
        };
        let rt = paused_runtime();
        let first = rt
            .block_on(executor(Some(case.plan())).run(SAGA, "saga-1", &case.input("saga-1")))
            .expect("the executor runs the saga to an outcome");
        let report = if matches!(first.outcome, Outcome::CompensationFailed { .. }) {
            let recovered = rt
                .block_on(executor(None).recover("saga-1"))
                .expect("a stuck saga recovers");
            prop_assert!(
                !matches!(recovered.outcome, Outcome::CompensationFailed { .. }),
                "still stuck without faults: {:?}",
                recovered.outcome
            );
            recovered
        } else {
            let before = ledger.of("saga-1");
            let refused = rt.block_on(executor(None).recover("saga-1"));
            prop_assert!(matches!(refused, Err(ExecutorError::NotStuck { .. })), "{:?}", refused);
            prop_assert_eq!(ledger.of("saga-1"), before);
            first
        };
        check_atomicity(&case, &report, &ledger.of("saga-1"))?;
    }

    /// Recovery: crashing the executor at any log position (twice), then resuming on a new
    /// executor that shares the log and the idempotency store, gives the same outcome, trace,
    /// output and ledger as running without a crash.
    #[test]
    fn recovery_after_crashes(case in case(1, 12), first in 0.0..1.0f64, second in 0.0..1.0f64) {
        let (clean, clean_effects) = run_once(&case, case.plan(), "saga-1");
        // A lower bound on the log's length: two events per invocation (a skip is one), the
        // start and the end.
        let length = clean
            .trace
            .0
            .iter()
            .map(|i| if i.result == InvocationResult::Skipped { 1 } else { 2 })
            .sum::<usize>()
            + 2;
        let mut crashes = vec![(first * length as f64) as usize, (second * length as f64) as usize];
        crashes.sort();
        crashes.dedup();

        let ledger = Arc::new(Ledger::default());
        let log = SagaLog::new();
        let store = Arc::new(InMemoryIdempotencyStore::new());
        let executor = |plan: FaultPlan| {
            InMemoryExecutor::builder()
                .saga(case.shape.build(SAGA, &ledger))
                .log(log.clone())
                .store(store.clone())
                .faults(plan)
                .build()
        };
        let rt = paused_runtime();
        let input = case.input("saga-1");
        let mut result = rt.block_on(executor(case.plan().crash_at(crashes[0])).run(SAGA, "saga-1", &input));
        // After a crash, a new executor resumes the saga from its log; a crash before
        // `SagaStarted` was written means the saga never started, and the caller starts it again.
        let restart = |plan: FaultPlan| {
            let executor = executor(plan);
            match log.records("saga-1") {
                Some(_) => rt.block_on(executor.resume("saga-1")),
                None => rt.block_on(executor.run(SAGA, "saga-1", &input)),
            }
        };
        for &position in &crashes[1..] {
            prop_assert!(matches!(result, Err(ExecutorError::Crashed { .. })), "expected a crash: {:?}", result);
            result = restart(case.plan().crash_at(position));
        }
        if matches!(result, Err(ExecutorError::Crashed { .. })) {
            result = restart(case.plan());
        }
        let recovered = result.expect("resumed to an outcome");
        if case.shape.has_groups() {
            // A resumed attempt starts again, which moves its branch against its siblings:
            // the outcome is one the model allows, with the properties of every outcome.
            check_atomicity(&case, &recovered, &ledger.of("saga-1"))?;
            check_prediction(&case, &recovered, &ledger.of("saga-1"), false)?;
            return Ok(());
        }
        prop_assert_eq!(&recovered.outcome, &clean.outcome);
        prop_assert_eq!(&recovered.trace, &clean.trace);
        prop_assert_eq!(&recovered.output, &clean.output);
        prop_assert_eq!(ledger.of("saga-1"), clean_effects);
    }

    /// Retry arithmetic: on the paused clock, the wait before retry n is exactly
    /// `IntervalSeconds * BackoffRate^(n-1)` capped by `MaxDelaySeconds` (at most that with FULL
    /// jitter), and a lost answer costs exactly the step's heartbeat.
    #[test]
    fn retry_delays_follow_the_policy(case in case(1, 12)) {
        let ledger = Arc::new(Ledger::default());
        let saga = case.shape.build(SAGA, &ledger);
        let definition = saga.definition().clone();
        let executor = InMemoryExecutor::builder().saga(saga).faults(case.plan()).build();
        paused_runtime().block_on(executor.run(SAGA, "saga-1", &case.input("saga-1"))).unwrap();
        let records = executor.log().records("saga-1").unwrap();
        let shape = |step: &str| {
            let index: usize = step[1..].parse().unwrap();
            &case.shape.steps[index]
        };
        let mut retries = 0;
        // Each event against the previous event of the same step and action: the branches of
        // a group interleave theirs.
        let mut previous: HashMap<(String, Action), &saga::LogRecord> = HashMap::new();
        for record in &records {
            let Some((step, action)) = step_action(&record.event) else { continue };
            let Some(before) = previous.insert((step.to_owned(), action), record) else { continue };
            let gap = record.at - before.at;
            let expected = match (&before.event, &record.event) {
                (SagaEvent::StepFailed { step, attempt, will_retry: true, .. }, SagaEvent::StepStarted { .. }) => {
                    Some((shape(step).retry.to_retry(), *attempt))
                }
                (SagaEvent::CompensationFailed { step, attempt, will_retry: true, error }, SagaEvent::CompensationStarted { .. }) => {
                    // Two retriers, each counting its own attempts: the wait for the
                    // execute still running, and the compensation's policy for the rest.
                    let waits = records.iter().take_while(|r| r.at <= before.at).filter(|r| matches!(&r.event,
                        SagaEvent::CompensationFailed { step: s, error, .. } if s == step && error.met_execute_in_progress())).count() as u32;
                    if error.met_execute_in_progress() {
                        Some((definition.step(step).unwrap().1.execute_wait(), waits))
                    } else {
                        Some((shape(step).compensation_retry.to_retry(), *attempt - waits))
                    }
                }
                (SagaEvent::StepStarted { step, .. }, SagaEvent::StepFailed { error, .. })
                | (SagaEvent::CompensationStarted { step, .. }, SagaEvent::CompensationFailed { error, .. }) => {
                    // No answer costs the step's heartbeat (nothing heartbeats a lost command);
                    // a handler that hangs, its timeout.
                    let seconds = |s: u32| Duration::from_secs(s.into());
                    let heartbeat = saga::StepDefinition::default_heartbeat(shape(step).timeout);
                    let want = match (error.kind, error.code.as_str()) {
                        (saga::FailureKind::Timeout, "HeartbeatTimeout") => seconds(heartbeat),
                        (saga::FailureKind::Timeout, _) => seconds(shape(step).timeout),
                        _ => Duration::ZERO,
                    };
                    prop_assert_eq!(gap, want, "invocation time of {:?}", record.event);
                    None
                }
                _ => None,
            };
            if let Some((policy, attempt)) = expected {
                retries += 1;
                let delay = policy.delay(attempt);
                // tokio's timer has millisecond resolution and rounds deadlines up.
                let slack = Duration::from_millis(1);
                match policy.jitter {
                    JitterStrategy::None => prop_assert!(
                        gap >= delay && gap <= delay + slack,
                        "retry {} waited {:?}, the policy says {:?}", attempt, gap, delay
                    ),
                    JitterStrategy::Full => prop_assert!(
                        gap <= delay + slack,
                        "retry {} waited {:?}, more than {:?}", attempt, gap, delay
                    ),
                }
            }
        }
        // Every retry in the trace was measured, but for a branch's retry that never came: its
        // group failed for good (another branch's step failed with no retry) before it was due,
        // and a failed group starts nothing more.
        let mut stopped = 0;
        for last in previous.values() {
            let SagaEvent::StepFailed { step, attempt, will_retry: true, .. } = &last.event else { continue };
            let due = last.at + shape(step).retry.to_retry().delay(*attempt);
            let group = shape(step).group.map(|(group, _)| group);
            let group_failed = records.iter().any(|r| matches!(&r.event,
                SagaEvent::StepFailed { step: other, will_retry: false, .. }
                    if group.is_some() && shape(other).group.map(|(g, _)| g) == group && r.at <= due));
            prop_assert!(group_failed, "{step}'s retry {attempt} never came, and no failure of its group stopped it");
            stopped += 1;
        }
        let retried = records.iter().filter(|r| matches!(r.event,
            SagaEvent::StepFailed { will_retry: true, .. } | SagaEvent::CompensationFailed { will_retry: true, .. })).count();
        prop_assert_eq!(retries + stopped, retried);
    }

    /// A compensation waits out its step's execute still in flight, whatever its own policy:
    /// in a group of two branches before the pivot, `s0` runs `slow` seconds (within its
    /// timeout) while `s1` fails for good after `k` retries. Then `s0` is applied once and undone once, after its
    /// execute, no later than a quarter of its timeout after the execute ended; the saga ends
    /// compensated, and the waits stay within `execute_wait`.
    #[test]
    fn a_compensation_waits_out_its_execute_in_flight(
        timeout in 2u32..400,
        slow in 1u64..400,
        k in 0u32..3,
        interval in 1u32..20,
        compensation in support::policy(),
    ) {
        let slow = slow % u64::from(timeout);
        let step = |group, retry: u32, compensation_retry| support::StepShape {
            kind: saga::StepKind::Compensable,
            retry: support::Policy { max_attempts: retry, interval, rate: 1.0, cap: None, full_jitter: false },
            compensation_retry,
            timeout,
            compensate_on_failure: true,
            condition: None,
            group: Some((0, group)),
        };
        let fail = |effect, first_attempt, attempts| support::FaultSpec { step: 1, action: Action::Execute, first_attempt, attempts, effect };
        let mut faults = vec![
            support::FaultSpec { step: 0, action: Action::Execute, first_attempt: 1, attempts: 1, effect: FaultEffect::Slow(Duration::from_secs(slow)) },
            fail(FaultEffect::Fail(saga::StepError::terminal("Injected", "injected")), k + 1, 1),
        ];
        if k > 0 {
            faults.push(fail(FaultEffect::Fail(saga::StepError::retryable("injected")), 1, k));
        }
        let case = Case {
            // A group of compensable steps is followed by more of the saga: the pivot.
            shape: support::Shape { steps: vec![
                step(0, 0, compensation),
                step(1, k, compensation),
                support::StepShape { kind: saga::StepKind::Pivot, group: None, ..step(0, 0, compensation) },
            ] },
            faults,
            inputs: support::Inputs { flags: vec![false; 3], n: 0 },
        };
        let ledger = Arc::new(Ledger::default());
        let saga = case.shape.build(SAGA, &ledger);
        let wait = saga.definition().steps[0].execute_wait();
        let executor = InMemoryExecutor::builder().saga(saga).faults(case.plan()).build();
        let report = paused_runtime().block_on(executor.run(SAGA, "saga-1", &case.input("saga-1"))).unwrap();
        prop_assert!(matches!(&report.outcome, Outcome::Compensated { failed_step, .. } if failed_step == "s1"), "{:?}", report.outcome);
        let effects: Vec<(Action, bool)> = ledger.of("saga-1").into_iter().filter(|e| e.step == "s0").map(|e| (e.action, e.undid)).collect();
        prop_assert_eq!(effects, vec![(Action::Execute, false), (Action::Compensate, true)]);
        let records = executor.log().records("saga-1").unwrap();
        let at = |wanted: &dyn Fn(&SagaEvent) -> bool| records.iter().find(|r| wanted(&r.event)).map(|r| r.at);
        let began = at(&|e| matches!(e, SagaEvent::StepStarted { step, .. } if step == "s0")).unwrap();
        let undone = at(&|e| matches!(e, SagaEvent::CompensationSucceeded { step, .. } if step == "s0")).unwrap();
        let first = at(&|e| matches!(e, SagaEvent::CompensationStarted { step, attempt: 1 } if step == "s0")).unwrap();
        let ended = began + Duration::from_secs(slow);
        if first >= ended {
            prop_assert_eq!(undone, first, "nothing to wait for");
        } else {
            prop_assert!(undone >= ended, "undone at {:?}, before the execute ended at {:?}", undone, ended);
            let quarter = Duration::from_secs(u64::from((timeout / 4).max(1)));
            prop_assert!(undone <= ended + quarter, "undone {:?} after the execute ended", undone - ended);
        }
        let waits = records.iter().filter(|r| matches!(&r.event,
            SagaEvent::CompensationFailed { step, error, .. } if step == "s0" && error.met_execute_in_progress())).count();
        prop_assert!(waits as u32 <= wait.max_attempts);
    }

    /// Liveness: 1,000 concurrent sagas, a third of them crashing at some log position and
    /// resumed by a new executor, all reach the outcome the model predicts; none is lost.
    #[test]
    fn liveness_of_a_thousand_concurrent_sagas(case in case(1, 12), crash_seed in 0usize..1000) {
        const SAGAS: usize = 1000;
        let ledger = Arc::new(Ledger::default());
        let log = SagaLog::new();
        let store = Arc::new(InMemoryIdempotencyStore::new());
        let ids: Vec<String> = (0..SAGAS).map(|k| format!("saga-{k}")).collect();
        let mut builder = InMemoryExecutor::builder()
            .saga(case.shape.build(SAGA, &ledger))
            .log(log.clone())
            .store(store.clone())
            .faults(case.plan());
        for (k, id) in ids.iter().enumerate().filter(|(k, _)| k % 3 == 0) {
            builder = builder.faults_for(id.clone(), case.plan().crash_at((k + crash_seed) % 24));
        }
        let executor = builder.build();
        let rt = paused_runtime();
        let (mut all, crashed) = rt.block_on(async {
            let tasks: Vec<_> = ids.iter().map(|id| executor.spawn(SAGA, id, &case.input(id))).collect();
            let (mut finished, mut crashed) = (HashMap::new(), Vec::new());
            for (id, task) in ids.iter().zip(tasks) {
                match task.await.expect("no saga task panics") {
                    Ok(report) => { finished.insert(report.saga_id.clone(), report); }
                    Err(ExecutorError::Crashed { .. }) => crashed.push(id.clone()),
                    Err(other) => panic!("unexpected executor error: {other}"),
                }
            }
            (finished, crashed)
        });
        let successor = InMemoryExecutor::builder()
            .saga(case.shape.build(SAGA, &ledger))
            .log(log.clone())
            .store(store.clone())
            .faults(case.plan())
            .build();
        // Sagas that crashed before `SagaStarted` never started: their callers start them again.
        let never_started: Vec<&String> = crashed.iter().filter(|id| log.records(id).is_none()).collect();
        let resumed = rt.block_on(successor.resume_all());
        prop_assert_eq!(resumed.len() + never_started.len(), crashed.len(), "every crashed saga is accounted for");
        for (id, report) in resumed {
            all.insert(id, report.expect("a resumed saga reaches an outcome"));
        }
        for id in never_started {
            let report = rt.block_on(successor.run(SAGA, id, &case.input(id))).expect("restarted");
            all.insert(id.clone(), report);
        }
        prop_assert_eq!(all.len(), SAGAS, "no saga is lost");
        prop_assert!(log.unfinished().is_empty());
        for id in &ids {
            check_prediction(&case, &all[id], &ledger.of(id), !crashed.contains(id))?;
        }
    }
}

/// The random shapes branch: about half of them have a parallel group (of 2 to 4 branches, of
/// up to 3 steps), before the pivot and after it.
#[test]
fn the_random_shapes_cover_groups() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut grouped, mut before, mut after, mut widest, mut longest) = (0, 0, 0, 0, 0);
    const CASES: usize = 256;
    for _ in 0..CASES {
        let case = case(1, 12).new_tree(&mut runner).unwrap().current();
        grouped += usize::from(case.shape.has_groups());
        for (group, branches) in case.shape.stages() {
            match group {
                Some(0) => before += 1,
                Some(_) => after += 1,
                None => continue,
            }
            assert!((2..=4).contains(&branches.len()), "{branches:?}");
            widest = widest.max(branches.len());
            longest = longest.max(branches.iter().map(Vec::len).max().unwrap());
        }
    }
    assert!(
        grouped * 3 >= CASES,
        "{grouped} of {CASES} cases have a group"
    );
    assert!(
        before > 0 && after > 0,
        "groups before the pivot {before}, after {after}"
    );
    assert_eq!((widest, longest), (4, 3));
}

/// The semantic lock on Step Functions, on both stores: random sagas with groups and
/// conditions under random faults, late and slow executes and failures while siblings run
/// included, on the emulator (the conformance harness reproduces each fault there), with the
/// participants' idempotency records in memory and in DynamoDB. No execute applies after its
/// step's compensation, on either store, in any branch.
///
/// Step Functions waits for real, so this draws `SAGA_LOCK_CASES` cases (16 by default) from
/// `SAGA_LOCK_SEED` (printed; random by default) and runs them at once, rather than one by
/// one as proptest would.
#[test]
fn the_semantic_lock_holds_on_step_functions_on_both_stores() {
    let number = |name: &str| {
        std::env::var(name).ok().map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
    };
    let count = number("SAGA_LOCK_CASES").unwrap_or(16) as usize;
    let seed = number("SAGA_LOCK_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    println!("SAGA_LOCK_SEED={seed} SAGA_LOCK_CASES={count}");
    let cases = draw(timed_case(1, 12), seed, count);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let verdicts = runtime.block_on(async {
        let config = saga_aws::testing::Emulator::shared().config().await;
        let runs = async |store: Conformance| {
            let store = store.concurrency(10);
            store
                .check(cases.iter().map(on_step_functions).collect())
                .await
        };
        let (memory, dynamodb) = tokio::join!(
            runs(Conformance::new(&config)),
            runs(Conformance::new(&config).dynamodb_store())
        );
        [("in-memory", memory), ("DynamoDB", dynamodb)]
    });
    let mut broken = Vec::new();
    for (store, verdicts) in verdicts {
        let verdicts = verdicts.unwrap_or_else(|e| panic!("the {store} lab did not open: {e}"));
        for verdict in verdicts {
            let case = &cases[verdict.index];
            match &verdict.emulator {
                Ok(run) => broken.extend(
                    executed_after_compensation(&run.applied).into_iter().map(|step| {
                        format!(
                            "{store} store, {case:?}: `{step}` executed after its compensation: {:?}",
                            run.applied
                        )
                    }),
                ),
                Err(why) => broken.push(format!("{store} store, {case:?} did not run: {why}")),
            }
        }
    }
    assert!(
        broken.is_empty(),
        "SAGA_LOCK_SEED={seed}:\n{}",
        broken.join("\n")
    );
}
