//! The end-to-end tests of `tests/e2e/` on the second emulator, fakecloud (with our patches,
//! `saga-aws/emulator/fakecloud/patches/`), as on moto: the same files, the emulator the one
//! difference. Left out, on moto only: the template's stack, its front door and versioned
//! deploys, which need CloudFormation, API Gateway and the version an execution runs, none of
//! which our fakecloud server has (`saga-aws/emulator/FAKECLOUD.md`).

use saga_aws::testing::{Emulator, EmulatorKind};

/// The emulator of these tests: fakecloud.
pub(crate) fn emulator() -> &'static Emulator {
    Emulator::shared_of(EmulatorKind::Fakecloud)
}

#[path = "e2e/backlog.rs"]
mod backlog;
#[path = "e2e/delivery.rs"]
mod delivery;
#[path = "e2e/deployed.rs"]
mod deployed;
#[path = "e2e/paths.rs"]
mod paths;
#[path = "e2e/recovery.rs"]
mod recovery;
#[path = "e2e/shop.rs"]
mod shop;
#[path = "e2e/stopping.rs"]
mod stopping;
