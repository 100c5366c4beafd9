//! One saga, two engines: random sagas under random faults, and a fixed corpus, run on the
//! in-memory executor and on Step Functions, compared by `saga_aws::testing::conformance`. Step
//! Functions is each of two independent emulators, started by the tests: moto and fakecloud
//! (`saga-aws/emulator/`, each with its fixes of its deviations from AWS), and every case must
//! agree on both.
//!
//! `SAGA_DIFF_CASES` sets the number of random cases (default 100), `SAGA_DIFF_SEED` replays a
//! run's cases (its seed is printed). A disagreement is written to
//! `target/differential/<emulator>-<seed>-<case>.json`, which one command replays:
//! `cargo run -p saga-aws --example conformance -- [--fakecloud] <file>`.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use saga_aws::testing::conformance::{CaseFile, Conformance, Run, Verdict};
use saga_aws::testing::{Emulator, EmulatorKind};
use saga_core::testing::FaultEffect;
use saga_core::{Action, FailureKind, InvocationResult};

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

#[path = "differential/conditions.rs"]
mod conditions;
#[path = "differential/generate.rs"]
mod generate;
#[path = "differential/groups.rs"]
mod groups;
use generate::case_file;

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
/// `<label>-<index>.json` and lists them, with the command that replays one, in the error
/// (for the test to fail with once it has said what its cases covered).
/// One check at a time on each emulator: the random cases and the corpus together would run
/// twice the cases at once, and a step's few seconds of heartbeat would then measure the
/// emulator's load rather than the saga. The two tests take the emulators in opposite orders,
/// so that each emulator is busy with one of them at a time.
static ONE_AT_A_TIME: [tokio::sync::Mutex<()>; 2] = [
    tokio::sync::Mutex::const_new(()),
    tokio::sync::Mutex::const_new(()),
];

/// Both emulators, each an independent oracle: moto (with the launcher's fixes) and fakecloud
/// (with its patches); see `saga-aws/emulator/FAKECLOUD.md`.
const EMULATORS: [EmulatorKind; 2] = [EmulatorKind::Moto, EmulatorKind::Fakecloud];

fn name(kind: EmulatorKind) -> &'static str {
    match kind {
        EmulatorKind::Moto => "moto",
        _ => "fakecloud",
    }
}

/// Keeps a failure's report readable: the panics the fault plans inject (caught, and answered
/// as `Panic` failures) print nothing, and any other panic prints its message and place
/// without a backtrace, which would otherwise bury the report of the disagreements.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info.payload_as_str().unwrap_or_default();
            if !message.starts_with("injected panic") {
                let place = info.location().map(|l| l.to_string()).unwrap_or_default();
                eprintln!("panicked at {place}:\n{message}");
            }
        }));
    });
}

async fn check(
    kind: EmulatorKind,
    label: &str,
    files: &[CaseFile],
) -> (Vec<Verdict>, Result<(), String>) {
    quiet_panics();
    let _turn = ONE_AT_A_TIME[usize::from(kind != EmulatorKind::Moto)]
        .lock()
        .await;
    let label = format!("{}-{label}", name(kind));
    let config = Emulator::shared_of(kind).config().await;
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
            "\ncase {} ({}):\n  {}\n  in memory: {:?}\n  on Step Functions: {:?}\n  replay: cargo run -p saga-aws --example conformance -- {}{}\n",
            verdict.index,
            path.display(),
            verdict.disagreements.join("\n  "),
            verdict.in_memory.trace,
            verdict.emulator.as_ref().map(|r| &r.trace),
            if kind == EmulatorKind::Moto { "" } else { "--fakecloud " },
            path.display()
        ));
    }
    let disagreements = verdicts.iter().filter(|v| !v.agrees()).count();
    eprintln!(
        "differential ({label}): {} cases, {disagreements} disagreements",
        verdicts.len()
    );
    let agreed = if report.is_empty() {
        Ok(())
    } else {
        eprintln!("{report}");
        Err(format!(
            "{disagreements} of {} cases disagree:{report}",
            verdicts.len()
        ))
    };
    (verdicts, agreed)
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
    let label = format!("seed-{seed}");
    let mut agreed = Vec::new();
    for kind in EMULATORS {
        agreed.push(check(kind, &label, &files).await);
    }
    let verdicts = &agreed[0].0;
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
    // And parallel groups, some of them failing while their siblings run.
    let grouped = files
        .iter()
        .filter(|f| f.definition.steps.iter().any(|s| s.group.is_some()))
        .count();
    let failing_in_group = verdicts
        .iter()
        .filter(|v| {
            let definition = &files[v.index].definition;
            // A step of a group that gave up: failed terminally, or on its last attempt.
            v.in_memory
                .trace
                .0
                .iter()
                .any(|i| match (&i.result, definition.step(&i.step)) {
                    (InvocationResult::Failed(error), Some((_, step))) => {
                        i.action == Action::Execute
                            && step.group.is_some()
                            && (error.kind == FailureKind::Terminal
                                || i.attempt > step.retry.max_attempts)
                    }
                    _ => false,
                })
        })
        .count();
    eprintln!(
        "differential: {grouped} cases with a parallel group, {failing_in_group} failing in one"
    );
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
        assert!(
            grouped * 3 >= count && failing_in_group >= 2,
            "{grouped} cases with a group, {failing_in_group} failing in one"
        );
    }
    for (kind, (_, agreed)) in EMULATORS.iter().zip(&agreed) {
        if let Err(report) = agreed {
            panic!("on {}: {report}", name(*kind));
        }
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
    // The other order than the random cases' (see ONE_AT_A_TIME).
    let mut checked = Vec::new();
    for kind in EMULATORS.iter().rev() {
        let (verdicts, agreed) = check(*kind, "corpus", &files).await;
        agreed.unwrap_or_else(|report| panic!("on {}: {report}", name(*kind)));
        checked.push(verdicts);
    }
    // The runs of the corpus case `name`: in memory, and on each emulator.
    let runs = |name: &str| -> [&Run; 3] {
        let index = paths
            .iter()
            .position(|p| p.ends_with(name))
            .unwrap_or_else(|| panic!("the corpus has `{name}`"));
        let [first, second] = [&checked[0], &checked[1]].map(|verdicts| {
            let verdict = verdicts
                .iter()
                .find(|v| v.index == index)
                .expect("its verdict");
            verdict.emulator.as_ref().expect("it runs on the emulator")
        });
        let in_memory = &checked[0]
            .iter()
            .find(|v| v.index == index)
            .expect("its verdict")
            .in_memory;
        [in_memory, first, second]
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
    conditions::check_condition_forms(runs);
    groups::check_group_cases(runs);
    let actions = |run: &Run, step: &str| -> Vec<Action> {
        (run.applied.iter())
            .filter(|(s, _)| s == step)
            .map(|(_, action)| *action)
            .collect()
    };
    // The payload limit, on both engines: an output that fits one state alone but not its
    // share of a group's result, or not the document it grows, fails its step terminally
    // (`DataLimitExceeded`, which the state machine catches), and what ran is undone.
    for (case, step) in [
        ("group-branch-output-over-its-share.json", "hotel"),
        ("document-grows-past-the-limit.json", "charge"),
    ] {
        for run in runs(case) {
            assert!(
                matches!(&run.outcome, saga_core::Outcome::Compensated { failed_step, error } if failed_step == step && error.code == "DataLimitExceeded"),
                "{case}: {:?}",
                run.outcome
            );
            assert_eq!(
                actions(run, "reserve"),
                [Action::Execute, Action::Compensate]
            );
        }
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
