//! End to end on the local emulator: a `#[saga]` deployed as a Step Functions state machine,
//! executed by the emulator, with the participant worker answering over SQS. The emulator starts
//! with the tests (never skipped); every test has its own state machine and queues.
//!
//! The emulator is moto ([`emulator`]); `tests/e2e_fakecloud.rs` runs the same tests, but for
//! the template's stack (`stack`), its front door (`front_door`) and versioned deploys
//! (`versions`, `rollout`), on fakecloud. Those need CloudFormation, API Gateway and the
//! version an execution runs, which our fakecloud server does not have
//! (`saga-aws/emulator/FAKECLOUD.md`).

use saga_aws::testing::Emulator;

/// The emulator of these tests: moto.
pub(crate) fn emulator() -> &'static Emulator {
    Emulator::shared()
}

mod backlog;
mod delivery;
mod deployed;
mod front_door;
mod paths;
mod recovery;
mod rollout;
mod shop;
mod stack;
mod stopping;
mod versions;
