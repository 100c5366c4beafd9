//! One saga, two engines: random sagas under random faults, and a fixed corpus, run on the
//! in-memory executor and on Step Functions (the emulator, started by the tests), compared by
//! `saga_aws::testing::conformance`.
//!
//! `SAGA_DIFF_CASES` sets the number of random cases (default 100), `SAGA_DIFF_SEED` replays a
//! run's cases (its seed is printed). A disagreement is written to
//! `target/differential/<seed>-<case>.json`, which one command replays:
//! `cargo run -p saga-aws --example conformance -- <file>`.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use saga_aws::testing::Emulator;
use saga_aws::testing::conformance::{CaseFile, Conformance, Run, Verdict};
use saga_core::testing::{Fault, FaultEffect, FaultPlan};
use saga_core::{
    Action, FailureKind, InvocationResult, JitterStrategy, Participant, RetryPolicy,
    SagaDefinition, StepDefinition, StepError, StepKind,
};
use serde_json::json;

/// Cases on Step Functions at once: enough to keep the emulator busy, few enough that its
/// latency stays far below the steps' heartbeats.
const CONCURRENCY: usize = 20;

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

fn policy() -> impl Strategy<Value = RetryPolicy> {
    // Small intervals: Step Functions (and the emulator) wait for real.
    (
        0u32..=2,
        prop::sample::select(vec![1.0, 1.5, 2.0]),
        any::<bool>(),
    )
        .prop_map(|(max_attempts, rate, full_jitter)| {
            RetryPolicy::new(max_attempts)
                .interval_seconds(1)
                .backoff_rate(rate)
                .jitter(if full_jitter {
                    JitterStrategy::Full
                } else {
                    JitterStrategy::None
                })
        })
}

/// A condition for step `i`, over the input's `flags` and `n` and the earlier steps' outputs,
/// or none (about 2 steps in 5).
fn condition(i: usize) -> BoxedStrategy<Option<String>> {
    let flag = format!("flags.s{i}");
    let mut forms = vec![
        Just(flag.clone()).boxed(),
        Just(format!("!{flag}")).boxed(),
        (0u8..=4).prop_map(|t| format!("n > {t}")).boxed(),
        (0u8..=4).prop_map(|t| format!("n <= {t}")).boxed(),
        (0u8..=4)
            .prop_map(move |t| format!("{flag} || n == {t}"))
            .boxed(),
    ];
    if i > 0 {
        forms.push(
            (0..i)
                .prop_map(|j| format!("present(steps.s{j}) && steps.s{j}.step == \"s{j}\""))
                .boxed(),
        );
    }
    prop::option::weighted(0.4, prop::strategy::Union::new(forms)).boxed()
}

/// 1 to 8 steps: compensable ones, then at most one pivot, then retriable ones; some with a
/// condition (never all).
fn definition() -> impl Strategy<Value = SagaDefinition> {
    (1usize..=8)
        .prop_flat_map(|n| (Just(n), 0..=n, any::<bool>()))
        .prop_flat_map(|(n, compensable, pivot)| {
            let steps: Vec<_> = (0..n)
                .map(|i| {
                    let kind = if i < compensable {
                        StepKind::Compensable
                    } else if i == compensable && pivot {
                        StepKind::Pivot
                    } else {
                        StepKind::Retriable
                    };
                    (policy(), policy(), prop::bool::weighted(0.85), condition(i)).prop_map(
                        move |(retry, compensation_retry, compensate_on_failure, condition)| {
                            let mut step = StepDefinition::new(
                                format!("s{i}"),
                                kind,
                                Participant::queue(format!("svc{}", i % 3)),
                            );
                            step.retry = retry;
                            step.compensation_retry = compensation_retry;
                            // The heartbeat is what a lost command waits for; it leaves the
                            // worker a few seconds to answer under load.
                            step.set_timing(Some(6), Some(5));
                            step.compensate_on_failure = compensate_on_failure;
                            step.condition = condition.map(|text| {
                                saga_core::Condition::parse(&text)
                                    .expect("generated conditions parse")
                            });
                            step
                        },
                    )
                })
                .collect();
            steps.prop_map(|mut steps| {
                if steps.iter().all(|s| s.condition.is_some())
                    && let Some(last) = steps.last_mut()
                {
                    last.condition = None;
                }
                SagaDefinition {
                    name: "differential".to_owned(),
                    version: 1,
                    steps,
                }
            })
        })
}

fn effect() -> impl Strategy<Value = FaultEffect> {
    prop_oneof![
        3 => Just(FaultEffect::Fail(StepError::retryable("injected"))),
        3 => Just(FaultEffect::Fail(StepError::terminal("Injected", "injected"))),
        1 => Just(FaultEffect::Timeout),
        2 => Just(FaultEffect::Duplicate),
        1 => Just(FaultEffect::Panic),
        1 => Just(FaultEffect::Late),
        1 => Just(FaultEffect::LoseAnswer),
    ]
}

/// A definition and up to four faults on its steps, at chosen attempts (mostly the first).
fn case_file() -> impl Strategy<Value = CaseFile> {
    definition().prop_flat_map(|definition| {
        let n = definition.steps.len();
        let fault = (
            0..n,
            prop::sample::select(vec![Action::Execute, Action::Compensate]),
            prop::sample::select(vec![1u32, 1, 1, 2, 3]),
            1u32..=3,
            effect(),
        )
            .prop_map(|(step, action, first, count, effect)| Fault {
                step: format!("s{step}"),
                action,
                attempts: first..=first + count - 1,
                effect,
            });
        let flags = prop::collection::vec(any::<bool>(), n);
        (prop::collection::vec(fault, 0..=4), flags, 0u8..=4).prop_map(
            move |(faults, flags, number)| {
                let flags: serde_json::Map<String, serde_json::Value> = flags
                    .into_iter()
                    .enumerate()
                    .map(|(i, flag)| (format!("s{i}"), flag.into()))
                    .collect();
                CaseFile {
                    definition: definition.clone(),
                    plan: FaultPlan {
                        faults,
                        crash_at: None,
                    },
                    input: json!({ "order": 42, "flags": flags, "n": number }),
                }
            },
        )
    })
}

/// `count` random case files from `seed`.
fn random_cases(seed: u64, count: usize) -> Vec<CaseFile> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    let strategy = case_file();
    (0..count)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("case files generate")
                .current()
        })
        .collect()
}

fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/differential")
}

/// Runs `files` on both engines; writes each disagreement as a case file named
/// `<label>-<index>.json` and fails, listing them with the command that replays one.
async fn check(label: &str, files: &[CaseFile]) -> Vec<Verdict> {
    let config = Emulator::shared().config().await;
    let cases = files
        .iter()
        .map(|f| f.case().expect("generated definitions are valid"))
        .collect();
    let verdicts = Conformance::new(&config)
        .concurrency(CONCURRENCY)
        .check(cases)
        .await
        .expect("the conformance harness sets up");
    let mut report = String::new();
    for verdict in verdicts.iter().filter(|v| !v.agrees()) {
        let path = target_dir().join(format!("{label}-{}.json", verdict.index));
        files[verdict.index]
            .write(&path)
            .expect("case file written");
        report.push_str(&format!(
            "\ncase {} ({}):\n  {}\n  in memory: {:?}\n  on Step Functions: {:?}\n  replay: cargo run -p saga-aws --example conformance -- {}\n",
            verdict.index,
            path.display(),
            verdict.disagreements.join("\n  "),
            verdict.in_memory.trace,
            verdict.emulator.as_ref().map(|r| &r.trace),
            path.display()
        ));
    }
    let disagreements = verdicts.iter().filter(|v| !v.agrees()).count();
    eprintln!(
        "differential ({label}): {} cases, {disagreements} disagreements",
        verdicts.len()
    );
    assert!(
        report.is_empty(),
        "{disagreements} of {} cases disagree:{report}",
        verdicts.len()
    );
    verdicts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sagas_under_random_faults_behave_alike_on_both_engines() {
    let seed = env_number("SAGA_DIFF_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
    });
    let count = env_number("SAGA_DIFF_CASES").unwrap_or(100) as usize;
    eprintln!("differential: seed {seed} (SAGA_DIFF_SEED={seed} replays these cases)");
    let files = random_cases(seed, count);
    let verdicts = check(&format!("seed-{seed}"), &files).await;
    // The cases must reach the paths that matter, or agreeing proves little.
    let outcomes = |name: &str| {
        verdicts
            .iter()
            .filter(|v| v.in_memory.outcome.name() == name)
            .count()
    };
    eprintln!(
        "differential: {} completed, {} compensated, {} compensation failed",
        outcomes("Completed"),
        outcomes("Compensated"),
        outcomes("CompensationFailed")
    );
    // And the faults of a worker's day: late executes and answers lost in a crash.
    let with = |effect: FaultEffect| {
        files
            .iter()
            .filter(|f| f.plan.faults.iter().any(|fault| fault.effect == effect))
            .count()
    };
    let (late, lost) = (with(FaultEffect::Late), with(FaultEffect::LoseAnswer));
    eprintln!("differential: {late} cases with a late execute, {lost} with a lost answer");
    // And conditions, decided both ways.
    let conditional = files
        .iter()
        .filter(|f| f.definition.steps.iter().any(|s| s.condition.is_some()))
        .count();
    let skipping = verdicts
        .iter()
        .filter(|v| {
            v.in_memory
                .trace
                .0
                .iter()
                .any(|i| i.result == InvocationResult::Skipped)
        })
        .count();
    eprintln!("differential: {conditional} cases with a condition, {skipping} skip a step");
    if count >= 100 {
        for name in ["Completed", "Compensated", "CompensationFailed"] {
            assert!(
                outcomes(name) >= 2,
                "only {} cases ended {name}",
                outcomes(name)
            );
        }
        assert!(late >= 2 && lost >= 2, "{late} late, {lost} lost");
        assert!(
            conditional * 3 >= count && skipping * 5 >= count,
            "{conditional} cases with a condition, {skipping} skipping one"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regression_corpus_behaves_alike_on_both_engines() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 10, "the corpus has {} cases", paths.len());
    let files: Vec<_> = paths
        .iter()
        .map(|p| CaseFile::read(p).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let verdicts = check("corpus", &files).await;
    // Both engines' runs of the corpus case `name`.
    let runs = |name: &str| -> [&Run; 2] {
        let index = paths
            .iter()
            .position(|p| p.ends_with(name))
            .unwrap_or_else(|| panic!("the corpus has `{name}`"));
        let verdict = verdicts
            .iter()
            .find(|v| v.index == index)
            .expect("its verdict");
        let emulator = verdict.emulator.as_ref().expect("it runs on the emulator");
        [&verdict.in_memory, emulator]
    };
    // A worker that crashed after the effect and before the answer: the attempt times out,
    // the retry answers from the store, and the effect is applied once, on both engines.
    for run in runs("lost-answer-recovers.json") {
        let reserve: Vec<_> = run
            .trace
            .0
            .iter()
            .filter(|i| i.step == "reserve" && i.action == Action::Execute)
            .map(|i| (i.attempt, i.result.clone()))
            .collect();
        assert!(
            matches!(&reserve[..], [(1, InvocationResult::Failed(e)), (2, InvocationResult::Succeeded)] if e.kind == FailureKind::Timeout),
            "{reserve:?}"
        );
        let applied = run.applied.iter().filter(|a| a.0 == "reserve").count();
        assert_eq!(applied, 1, "{:?}", run.applied);
    }
    // The semantic lock, on both engines: the late executes of `hold` arrive after its
    // compensation and apply nothing (agreeing alone would not show it).
    for run in runs("late-execute-after-compensation.json") {
        assert!(
            !run.applied.contains(&("hold".to_owned(), Action::Execute)),
            "a late execute ran after its compensation: {:?}",
            run.applied
        );
        assert!(
            run.applied
                .contains(&("hold".to_owned(), Action::Compensate)),
            "`hold` was compensated: {:?}",
            run.applied
        );
    }
    // Conditions, on both engines: a false one skips its step forward and back, a true one
    // runs it and compensates it, and a skipped last step still completes the saga.
    let touched = |run: &Run, step: &str| run.applied.iter().any(|(s, _)| s == step);
    for run in runs("condition-false-skips-forward-and-back.json") {
        assert!(!touched(run, "hold"), "{:?}", run.applied);
        assert!(
            run.trace
                .0
                .iter()
                .any(|i| i.step == "hold" && i.result == InvocationResult::Skipped),
            "{:?}",
            run.trace
        );
        assert!(
            run.applied
                .contains(&("reserve".to_owned(), Action::Compensate))
        );
    }
    for run in runs("condition-true-runs-and-compensates.json") {
        assert!(
            run.applied.contains(&("hold".to_owned(), Action::Execute))
                && run
                    .applied
                    .contains(&("hold".to_owned(), Action::Compensate)),
            "{:?}",
            run.applied
        );
    }
    for run in runs("condition-skips-the-last-step.json") {
        assert_eq!(run.outcome.name(), "Completed");
        assert!(!touched(run, "ship"), "{:?}", run.applied);
        assert!(
            run.events
                .iter()
                .any(|e| e.detail_type() == "SagaCompleted"),
            "the saga's end is published though its last step was skipped: {:?}",
            run.events
        );
    }
    // A late execute of a step whose retry failed terminally finds that failure in the store
    // and applies nothing: the saga ended without the effect, and nothing will undo one.
    for run in runs("late-execute-after-terminal-failure.json") {
        assert!(
            run.applied.is_empty(),
            "a late execute ran after its step failed for good: {:?}",
            run.applied
        );
    }
}

#[test]
fn a_case_file_round_trips() {
    let files = random_cases(7, 20);
    for file in &files {
        let text = serde_json::to_string(file).unwrap();
        let back: CaseFile = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, file);
        file.case().expect("a valid case");
    }
    // The same seed gives the same cases; another seed others.
    assert_eq!(random_cases(7, 20), files);
    assert_ne!(random_cases(8, 20), files);
}
