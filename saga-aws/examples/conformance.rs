//! Replays conformance case files on both engines, the in-memory executor and Step Functions on
//! the local emulator (started here, gone when this exits), and prints what each did.
//!
//! ```text
//! cargo run -p saga-aws --example conformance -- target/differential/moto-seed-1-3.json
//! cargo run -p saga-aws --example conformance -- --fakecloud target/differential/fakecloud-seed-1-3.json
//! cargo run -p saga-aws --example conformance -- --write-corpus saga-aws/tests/corpus
//! ```
//!
//! Exits with 1 when the engines disagree on any case, 2 on bad usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use saga_aws::testing::conformance::{CaseFile, Conformance, HEARTBEAT_SECONDS, TIMEOUT_SECONDS};
use saga_aws::testing::{Emulator, EmulatorKind};
use saga_core::testing::FaultPlan;
use saga_core::{
    Action, Participant, RetryPolicy, SagaDefinition, StepDefinition, StepError, StepKind,
};
use serde_json::json;

const USAGE: &str = "\
usage: cargo run -p saga-aws --example conformance -- [--fakecloud] CASE.json...
       cargo run -p saga-aws --example conformance -- --write-corpus DIR

Runs each case file on the in-memory executor and on Step Functions (the local emulator: moto,
or fakecloud with --fakecloud) and prints where they differ. --write-corpus writes the
regression corpus's case files to DIR.";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
        [flag, dir] if flag == "--write-corpus" => write_corpus(Path::new(dir)),
        [flag, paths @ ..] if flag == "--fakecloud" && !paths.is_empty() => {
            replay(EmulatorKind::Fakecloud, paths).await
        }
        [flag, ..] if flag.starts_with('-') => {
            eprintln!("unknown option {flag}\n\n{USAGE}");
            ExitCode::from(2)
        }
        paths => replay(EmulatorKind::Moto, paths).await,
    }
}

async fn replay(kind: EmulatorKind, paths: &[String]) -> ExitCode {
    let mut files = Vec::new();
    for path in paths {
        match CaseFile::read(Path::new(path)) {
            Ok(file) => files.push(file),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut cases = Vec::new();
    for (file, path) in files.iter().zip(paths) {
        match file.case() {
            Ok(case) => cases.push(case),
            Err(e) => {
                eprintln!("error: {path}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let config = Emulator::shared_of(kind).config().await;
    let verdicts = match Conformance::new(&config).check(cases).await {
        Ok(verdicts) => verdicts,
        Err(e) => {
            eprintln!("error: the harness could not set up: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut disagreeing = 0;
    for (verdict, path) in verdicts.iter().zip(paths) {
        println!("{path}:");
        println!("  in memory:         {}", verdict.in_memory.outcome);
        println!("    trace:   {:?}", verdict.in_memory.trace.0);
        println!("    applied: {:?}", verdict.in_memory.applied);
        match &verdict.emulator {
            Ok(run) => {
                println!("  on Step Functions: {}", run.outcome);
                println!("    trace:   {:?}", run.trace.0);
                println!("    applied: {:?}", run.applied);
            }
            Err(why) => println!("  on Step Functions: did not run: {why}"),
        }
        if verdict.agrees() {
            println!("  the engines agree");
        } else {
            disagreeing += 1;
            for d in &verdict.disagreements {
                println!("  DISAGREE {d}");
            }
        }
    }
    if disagreeing == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{disagreeing} of {} cases disagree", verdicts.len());
        ExitCode::FAILURE
    }
}

/// The corpus saga: two compensable steps, the pivot, a retriable step; small retry intervals.
fn corpus_saga() -> SagaDefinition {
    let step = |name: &str, kind| {
        let mut step = StepDefinition::new(name, kind, Participant::queue("corpus"));
        step.retry = RetryPolicy::new(2).interval_seconds(1);
        step.compensation_retry = RetryPolicy::new(2).interval_seconds(1);
        step.set_timing(Some(TIMEOUT_SECONDS), Some(HEARTBEAT_SECONDS));
        step
    };
    SagaDefinition {
        name: "corpus".to_owned(),
        version: 1,
        steps: vec![
            step("reserve", StepKind::Compensable),
            step("hold", StepKind::Compensable),
            step("charge", StepKind::Pivot),
            step("ship", StepKind::Retriable),
        ],
    }
}

fn write_corpus(dir: &Path) -> ExitCode {
    let terminal = || StepError::terminal("Rejected", "said no");
    let retryable = || StepError::retryable("blip");
    let mut cases: Vec<(String, FaultPlan)> = vec![("success".into(), FaultPlan::new())];
    for step in ["reserve", "hold", "charge", "ship"] {
        cases.push((
            format!("terminal-failure-at-{step}"),
            FaultPlan::new().fail(step, Action::Execute, terminal(), 1),
        ));
    }
    cases.extend([
        (
            "retry-recovers".into(),
            FaultPlan::new().fail("hold", Action::Execute, retryable(), 2),
        ),
        (
            "retries-exhausted".into(),
            FaultPlan::new().fail("hold", Action::Execute, retryable(), 3),
        ),
        (
            "timeout-recovers".into(),
            FaultPlan::new().time_out("reserve", Action::Execute, 1),
        ),
        (
            "timeout-compensates".into(),
            FaultPlan::new().time_out("hold", Action::Execute, 3),
        ),
        (
            "compensation-fails-terminally".into(),
            FaultPlan::new()
                .fail("charge", Action::Execute, terminal(), 1)
                .fail("reserve", Action::Compensate, terminal(), 1),
        ),
        (
            "compensation-exhausts-its-retries".into(),
            FaultPlan::new()
                .fail("charge", Action::Execute, terminal(), 1)
                .fail("hold", Action::Compensate, retryable(), 3),
        ),
        (
            "compensation-recovers".into(),
            FaultPlan::new()
                .fail("hold", Action::Execute, terminal(), 1)
                .fail("hold", Action::Compensate, retryable(), 1),
        ),
        (
            "retriable-step-gives-up".into(),
            FaultPlan::new().fail("ship", Action::Execute, retryable(), 3),
        ),
        (
            "duplicate-deliveries".into(),
            FaultPlan::new()
                .duplicate("reserve", Action::Execute)
                .duplicate("charge", Action::Execute),
        ),
        (
            "duplicate-compensation".into(),
            FaultPlan::new()
                .fail("charge", Action::Execute, terminal(), 1)
                .duplicate("hold", Action::Compensate),
        ),
        (
            "panic-recovers".into(),
            FaultPlan::new().panic("charge", Action::Execute, 1),
        ),
    ]);
    for (name, plan) in cases {
        let file = CaseFile {
            definition: corpus_saga(),
            plan,
            input: json!({ "order": 42 }),
        };
        let path: PathBuf = dir.join(format!("{name}.json"));
        if let Err(e) = file.write(&path) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
