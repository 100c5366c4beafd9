//! Deploying and running sagas on Step Functions: create or update the state machine generated
//! from a `SagaDefinition`, start an execution named by the saga id (once), describe it, and
//! read its history into the same [`Trace`] the in-memory executor returns.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::types::{ExecutionStatus as SdkStatus, HistoryEvent, HistoryEventType};
use saga_core::asl::substitutions;
use saga_core::{Action, SagaDefinition, Trace};
use serde_json::Value;

use crate::error::AwsError;

mod execution;
mod history;
mod recovery;
mod versions;
mod wait;

pub use execution::{ExecutionState, Status};
pub use history::trace_from_history;
use history::{document_from_history, trace_and_running};
pub use recovery::Stuck;
pub use versions::{ALIAS, InFlight, machine_name, unqualified};
pub use wait::Wait;

/// Values for a definition's `${...}` substitutions: queue URLs and function ARNs by key.
pub type Bindings = BTreeMap<String, String>;

/// What [`StepFunctions::deploy`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The state machine did not exist and was created.
    Created,
    /// It existed with another definition and was updated.
    Updated,
    /// It existed with this very definition.
    Unchanged,
}

/// A deployed state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// Its ARN.
    pub arn: String,
    /// What the deploy changed.
    pub change: Change,
    /// The version the deploy published (or found published: a revision is published once).
    pub version_arn: String,
    /// The alias [`ALIAS`], which now points at that version: new sagas start there.
    pub alias_arn: String,
}

/// A started (or already running) execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// Its ARN.
    pub arn: String,
    /// `false` when an execution with this saga id already existed and nothing was started.
    pub started: bool,
}

/// Step Functions, for sagas.
#[derive(Debug, Clone)]
pub struct StepFunctions {
    client: Client,
    role_arn: String,
    describe_first: bool,
    #[cfg(feature = "eventbridge")]
    events: Option<crate::events::EventPublisher>,
}

impl StepFunctions {
    /// A client from an SDK configuration (see [`crate::config::from_env`]) and the IAM role the
    /// state machines run as.
    pub fn new(config: &SdkConfig, role_arn: impl Into<String>) -> Self {
        Self {
            client: Client::new(config),
            role_arn: role_arn.into(),
            describe_first: true,
            #[cfg(feature = "eventbridge")]
            events: None,
        }
    }

    /// Makes [`start`](Self::start) call StartExecution alone, without DescribeExecution
    /// first, so that the caller needs only `states:StartExecution` on the state machine (no
    /// permission on its executions, whose ARNs are not known in advance). A repeated start
    /// while the saga runs then reports `started: true`; it still starts nothing.
    pub fn start_only(mut self) -> Self {
        self.describe_first = false;
        self
    }

    /// Publishes `SagaStarted` on `events` for every saga [`start`](Self::start) starts (not
    /// for a repeated start of the same saga id).
    #[cfg(feature = "eventbridge")]
    pub fn with_events(mut self, events: crate::events::EventPublisher) -> Self {
        self.events = Some(events);
        self
    }

    /// `SagaStarted`, if there is a publisher. The saga is running whatever happens here, so a
    /// failure to publish is logged, not returned.
    #[allow(
        clippy::unused_async,
        reason = "without `eventbridge` there is nothing to await"
    )]
    async fn started(&self, state_machine_arn: &str, saga_id: &str) {
        #[cfg(feature = "eventbridge")]
        if let Some(events) = &self.events {
            // Deployed state machines are named after their saga.
            let saga = machine_name(state_machine_arn);
            let started = crate::events::SagaNotification::SagaStarted {
                saga: saga.to_owned(),
                saga_id: saga_id.to_owned(),
            };
            if let Err(error) = events.publish(&[started]).await {
                tracing::warn!(%error, saga_id, "could not publish SagaStarted");
            }
        }
        #[cfg(not(feature = "eventbridge"))]
        let _ = (state_machine_arn, saga_id);
    }

    /// Creates the state machine for `definition`, named after the saga, or updates it if its
    /// definition changed, then publishes the revision as a version and moves the alias
    /// [`ALIAS`] to it: sagas started through the alias from then on run this version, and
    /// those in flight finish on theirs. Deploying the same definition again changes nothing.
    /// Every `${...}` of the definition must have a value in `bindings`.
    pub async fn deploy(
        &self,
        definition: &SagaDefinition,
        bindings: &Bindings,
    ) -> Result<Deployment, AwsError> {
        let found = self.find(&definition.name).await?;
        self.deploy_over(definition, bindings, found).await
    }

    /// [`deploy`](Self::deploy) over the state machine `found` (its ARN, already looked up),
    /// or a new one.
    pub(crate) async fn deploy_over(
        &self,
        definition: &SagaDefinition,
        bindings: &Bindings,
        found: Option<String>,
    ) -> Result<Deployment, AwsError> {
        let json = bound_definition(definition, bindings)?;
        let (arn, change) = match found {
            None => {
                let created = self
                    .client
                    .create_state_machine()
                    .name(&definition.name)
                    .definition(&json)
                    .role_arn(&self.role_arn)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("CreateStateMachine", e))?;
                (created.state_machine_arn, Change::Created)
            }
            Some(arn) => {
                let current = self
                    .client
                    .describe_state_machine()
                    .state_machine_arn(&arn)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("DescribeStateMachine", e))?;
                let same = serde_json::from_str::<Value>(&current.definition).ok()
                    == serde_json::from_str::<Value>(&json).ok();
                if same {
                    (arn, Change::Unchanged)
                } else {
                    self.client
                        .update_state_machine()
                        .state_machine_arn(&arn)
                        .definition(&json)
                        .role_arn(&self.role_arn)
                        .send()
                        .await
                        .map_err(|e| AwsError::from_sdk("UpdateStateMachine", e))?;
                    (arn, Change::Updated)
                }
            }
        };
        let description = format!("saga `{}` version {}", definition.name, definition.version);
        let (version_arn, alias_arn) = self.publish(&arn, &description).await?;
        Ok(Deployment {
            arn,
            change,
            version_arn,
            alias_arn,
        })
    }

    /// The ARN of the state machine called `name` (a saga's name), if it is deployed.
    pub async fn arn_of(&self, name: &str) -> Result<Option<String>, AwsError> {
        self.find(name).await
    }

    /// Where an execution stands and what it has done so far: its state, its finished
    /// invocations, and the one running now, if any (for following it live).
    pub async fn progress(&self, execution_arn: &str) -> Result<Progress, AwsError> {
        let state = self.describe(execution_arn).await?;
        let events = self.history(execution_arn).await?;
        let (trace, running) = trace_and_running(&events);
        let running = running.filter(|_| state.status == Status::Running);
        let document = match state.status {
            Status::Failed => document_from_history(&events, HistoryEventType::FailStateEntered),
            Status::Stuck => document_from_history(&events, HistoryEventType::TaskStateEntered),
            _ => None,
        };
        Ok(Progress {
            state,
            trace,
            running,
            document,
        })
    }

    async fn find(&self, name: &str) -> Result<Option<String>, AwsError> {
        let mut pages = self.client.list_state_machines().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ListStateMachines", e))?;
            if let Some(found) = page.state_machines.into_iter().find(|m| m.name == name) {
                return Ok(Some(found.state_machine_arn));
            }
        }
        Ok(None)
    }

    /// Starts the saga `saga_id` with `input`; the execution is named by the saga id, so
    /// starting the same saga twice starts it once (the second call reports `started: false`).
    pub async fn start(
        &self,
        state_machine_arn: &str,
        saga_id: &str,
        input: &Value,
    ) -> Result<Execution, AwsError> {
        if !input.is_object() {
            return Err(AwsError::InvalidInput(
                "the saga input must be a JSON object".into(),
            ));
        }
        saga_core::analysis::check_payload("the saga input", input)?;
        // The saga's root span: its trace id and span id are the ones the state machine puts
        // in every command's `traceparent`, so each participant's span joins this trace.
        let saga = machine_name(state_machine_arn);
        let (trace_id, span_id) = (
            saga_core::protocol::trace_id(saga_id),
            saga_core::protocol::saga_span_id(saga),
        );
        let span = tracing::info_span!(
            "saga",
            otel.kind = "producer",
            saga.name = saga,
            saga.id = saga_id,
            trace_id = %trace_id,
            span_id = %span_id,
        );
        #[cfg(feature = "opentelemetry")]
        crate::otel::join(&span, &trace_id, &span_id);
        use tracing::Instrument;
        self.start_in_span(state_machine_arn, saga_id, input)
            .instrument(span)
            .await
    }

    async fn start_in_span(
        &self,
        state_machine_arn: &str,
        saga_id: &str,
        input: &Value,
    ) -> Result<Execution, AwsError> {
        // Step Functions answers a repeated StartExecution for a *running* execution with the
        // same name and input with success, so look first to tell a new start from a repeat.
        let arn = execution_arn(state_machine_arn, saga_id);
        if !self.describe_first {
            return self.start_named(state_machine_arn, saga_id, input).await;
        }
        let existing = self
            .client
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await;
        match existing {
            Ok(_) => {
                return Ok(Execution {
                    arn,
                    started: false,
                });
            }
            Err(e) => {
                let error = AwsError::from_sdk("DescribeExecution", e);
                if error.code() != Some("ExecutionDoesNotExist") {
                    return Err(error);
                }
            }
        }
        self.start_named(state_machine_arn, saga_id, input).await
    }

    /// StartExecution alone: `started: false` when an execution of that name has ended (or
    /// has another input); a repeat while it runs counts as started (Step Functions answers it
    /// as the same start, and starts nothing).
    async fn start_named(
        &self,
        state_machine_arn: &str,
        saga_id: &str,
        input: &Value,
    ) -> Result<Execution, AwsError> {
        let started = self
            .client
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(saga_id)
            .input(input.to_string())
            .send()
            .await;
        match started {
            Ok(out) => {
                self.started(state_machine_arn, saga_id).await;
                Ok(Execution {
                    arn: out.execution_arn,
                    started: true,
                })
            }
            Err(e) => {
                let error = AwsError::from_sdk("StartExecution", e);
                if error.code() == Some("ExecutionAlreadyExists") {
                    return Ok(Execution {
                        arn: execution_arn(state_machine_arn, saga_id),
                        started: false,
                    });
                }
                Err(error)
            }
        }
    }

    /// The execution's status, output and error.
    pub async fn describe(&self, execution_arn: &str) -> Result<ExecutionState, AwsError> {
        let out = self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeExecution", e))?;
        let status = match out.status {
            SdkStatus::Running if self.waits_for_operator(execution_arn).await? => Status::Stuck,
            SdkStatus::Running | SdkStatus::PendingRedrive => Status::Running,
            SdkStatus::Succeeded => Status::Succeeded,
            SdkStatus::TimedOut => Status::TimedOut,
            SdkStatus::Aborted => Status::Aborted,
            _ => Status::Failed,
        };
        let output = out
            .output
            .as_deref()
            .and_then(|o| serde_json::from_str(o).ok());
        Ok(ExecutionState {
            status,
            output,
            error: out.error,
            cause: out.cause,
        })
    }

    /// The invocations the execution made, read from its history.
    pub async fn trace(&self, execution_arn: &str) -> Result<Trace, AwsError> {
        Ok(trace_from_history(&self.history(execution_arn).await?))
    }

    /// Every event of an execution's history, all pages.
    async fn history(&self, execution_arn: &str) -> Result<Vec<HistoryEvent>, AwsError> {
        let mut events = Vec::new();
        let mut pages = self
            .client
            .get_execution_history()
            .execution_arn(execution_arn)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("GetExecutionHistory", e))?;
            events.extend(page.events);
        }
        Ok(events)
    }
}

/// An execution as it runs: see [`StepFunctions::progress`].
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Its status, output and error.
    pub state: ExecutionState,
    /// The invocations that have finished.
    pub trace: Trace,
    /// The invocation running now: step, action and attempt.
    pub running: Option<(String, Action, u32)>,
    /// The saga document the execution failed with (the input of its `Fail` state), or waits
    /// for an operator with (the input of the report it waits at).
    pub document: Option<Value>,
}

/// The ARN Step Functions gives the execution `name` of a state machine, whether it was
/// started on the state machine, a version or an alias (`state_machine_arn` may be any).
pub fn execution_arn(state_machine_arn: &str, name: &str) -> String {
    format!(
        "{}:{name}",
        unqualified(state_machine_arn).replacen(":stateMachine:", ":execution:", 1)
    )
}

/// The definition JSON with every `${key}` replaced by its binding.
pub fn bound_definition(
    definition: &SagaDefinition,
    bindings: &Bindings,
) -> Result<String, AwsError> {
    for (key, participant) in substitutions(definition) {
        if !bindings.contains_key(&key) {
            let what = match participant {
                saga_core::Participant::Queue(q) => format!("the URL of queue `{q}`"),
                saga_core::Participant::Lambda(f) => format!("the ARN of function `{f}`"),
            };
            return Err(AwsError::MissingBinding { name: key, what });
        }
    }
    let mut value =
        serde_json::to_value(definition.state_machine()).expect("state machines serialise");
    // Stuck sagas are reported on the account's default bus unless told otherwise.
    let mut bindings = bindings.clone();
    bindings
        .entry(saga_core::asl::EVENT_BUS_KEY.to_owned())
        .or_insert_with(|| "default".to_owned());
    substitute(&mut value, &bindings);
    Ok(value.to_string())
}

fn substitute(value: &mut Value, bindings: &Bindings) {
    match value {
        Value::String(s) => {
            if let Some(key) = s.strip_prefix("${").and_then(|k| k.strip_suffix('}'))
                && let Some(bound) = bindings.get(key)
            {
                *s = bound.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, bindings)),
        Value::Object(map) => map.values_mut().for_each(|v| substitute(v, bindings)),
        _ => {}
    }
}
