//! The second emulator, fakecloud's services in our small server
//! (`saga-aws/emulator/fakecloud-server`), as the tests start it: `Emulator::shared_of`.
//!
//! The suite does not run on it yet: most corpus cases still meet a difference between
//! fakecloud and the in-memory executor, each listed in `saga-aws/emulator/FAKECLOUD.md` to be
//! resolved from the AWS documentation. The cases that already behave alike on both are pinned
//! here, so a change that breaks one on fakecloud shows.

use std::path::Path;

use saga_aws::testing::conformance::{CaseFile, Conformance};
use saga_aws::testing::{Emulator, EmulatorKind};

/// The corpus cases fakecloud runs as the in-memory executor does (December 4: 5 of 32).
const ALIKE: [&str; 5] = [
    "success.json",
    "terminal-failure-at-reserve.json",
    "condition-false-skips-forward-and-back.json",
    "condition-skips-the-last-step.json",
    "document-grows-past-the-limit.json",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_cases_fakecloud_runs_alike_agree_with_the_in_memory_executor() {
    let config = Emulator::shared_of(EmulatorKind::Fakecloud).config().await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let files: Vec<CaseFile> = ALIKE
        .iter()
        .map(|name| CaseFile::read(&dir.join(name)).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let cases = files
        .iter()
        .map(|f| f.case().expect("the corpus's definitions are valid"))
        .collect();
    let verdicts = Conformance::new(&config)
        .check(cases)
        .await
        .expect("the conformance harness sets up on fakecloud");
    assert_eq!(verdicts.len(), ALIKE.len());
    let disagreements: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.agrees())
        .map(|v| format!("{}: {}", ALIKE[v.index], v.disagreements.join("; ")))
        .collect();
    assert!(
        disagreements.is_empty(),
        "on fakecloud:\n{}",
        disagreements.join("\n")
    );
}
