//! Amazon States Language: a typed model of the subset we emit, and the generator that turns a
//! [`SagaDefinition`](crate::SagaDefinition) into a Standard-workflow state machine.

mod generate;
mod model;
mod parameters;

pub use generate::{
    COMPENSATED_STATE, COMPLETED_STATE, EVENT_BUS_KEY, EVENTS_PUT, LAMBDA_CALLBACK,
    RECOVERY_WINDOW_SECONDS, SQS_CALLBACK, compensate_state, compensate_when_state,
    compensation_failed_state, generate, report_state, stuck_state, successors, when_state,
};
pub use model::{
    Catcher, ChoiceRule, ChoiceState, FailState, ResultPath, Retrier, State, StateMachine, States,
    SucceedState, TaskState, Transition,
};
pub use parameters::{substitution_key, substitutions};
