//! End to end on the local emulator: a `#[saga]` deployed as a Step Functions state machine,
//! executed by moto, with the participant worker answering over SQS. The emulator starts with the
//! tests (never skipped); every test has its own state machine and queues.

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
