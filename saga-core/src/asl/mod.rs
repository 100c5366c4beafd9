//! Amazon States Language: a typed model of the subset we emit, and the generator that turns a
//! [`SagaDefinition`](crate::SagaDefinition) into a Standard-workflow state machine (a parallel
//! group's `Parallel` state: see [`parallel`]: its branches, the
//! merge of their documents, the `steps` rule and the transition formulas).

mod generate;
mod model;
pub mod parallel;
mod parameters;
mod task;

pub use generate::{
    COMPENSATED_STATE, COMPLETED_STATE, EVENT_BUS_KEY, EVENTS_PUT, LAMBDA_CALLBACK,
    RECOVERY_WINDOW_SECONDS, SQS_CALLBACK, compensate_state, compensate_when_state,
    compensation_failed_state, generate, report_state, stuck_state, successors, when_state,
};
pub use model::{
    Catcher, ChoiceRule, ChoiceState, FailState, ParallelState, PassState, ResultPath, Retrier,
    State, StateMachine, States, SucceedState, TaskState, Transition,
};
pub use parallel::{
    MAX_GROUP_BRANCHES, branch_end_state, group_steps_state, has_steps_state, merged_document,
};
pub use parameters::{substitution_key, substitutions};
