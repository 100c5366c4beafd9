//! [`Saga`]: a validated [`SagaDefinition`] together with the handlers of its steps, and the
//! fluent [`SagaBuilder`] that assembles one by hand (the `#[saga]` macro generates the same).

use std::sync::Arc;
use std::time::Duration;

use crate::definition::{
    DefinitionError, GroupBranch, Participant, SagaDefinition, StepDefinition, StepKind,
};
use crate::retry::RetryPolicy;
use crate::step::{Compensable, Step, StepHandler, compensable_handler, forward_handler};

/// A saga ready to run: the declaration plus one handler per step.
///
/// ```
/// use saga_core::{Compensable, Saga, Step, StepContext, StepError};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Deserialize)] struct Order { sku: String }
/// # struct Reserve; struct Charge; struct Ship;
/// # impl Step for Reserve { type Input = Order; type Output = String;
/// #   async fn execute(&self, _: &StepContext<'_>, o: Order) -> Result<String, StepError> { Ok(o.sku) } }
/// # impl Compensable for Reserve {
/// #   async fn compensate(&self, _: &StepContext<'_>, _: Order, _: Option<String>) -> Result<(), StepError> { Ok(()) } }
/// # impl Step for Charge { type Input = Order; type Output = ();
/// #   async fn execute(&self, _: &StepContext<'_>, _: Order) -> Result<(), StepError> { Ok(()) } }
/// # impl Step for Ship { type Input = Order; type Output = ();
/// #   async fn execute(&self, _: &StepContext<'_>, _: Order) -> Result<(), StepError> { Ok(()) } }
/// use std::time::Duration;
///
/// let saga = Saga::builder("order")
///     .version(2)
///     .compensable("reserve_stock", Reserve)
///         .participant("inventory")
///         .timeout(Duration::from_secs(30))
///     .pivot("charge_payment", Charge)
///         .participant("payments")
///     .retriable("ship_order", Ship)
///         .participant("shipping")
///     .build()?;
/// assert_eq!(saga.definition().steps.len(), 3);
/// # Ok::<(), saga_core::DefinitionError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Saga {
    definition: SagaDefinition,
    handlers: Vec<Arc<dyn StepHandler>>,
    /// Per step, the copies of the document it grows one state may carry (the payload limit).
    copies: Arc<[usize]>,
}

impl Saga {
    /// Starts declaring a saga called `name` (version 1 unless [`SagaBuilder::version`] says).
    pub fn builder(name: impl Into<String>) -> SagaBuilder {
        SagaBuilder {
            name: name.into(),
            version: 1,
            steps: Vec::new(),
        }
    }

    /// Pairs a definition with its handlers, one per step in the same order. The definition is
    /// validated. This is what the `#[saga]` macro calls.
    pub fn from_parts(
        definition: SagaDefinition,
        handlers: Vec<Arc<dyn StepHandler>>,
    ) -> Result<Self, DefinitionError> {
        definition.validate()?;
        assert_eq!(
            definition.steps.len(),
            handlers.len(),
            "one handler per step"
        );
        Ok(Self {
            copies: crate::analysis::payload::copies(&definition).into(),
            definition,
            handlers,
        })
    }

    /// The same saga under another name, e.g. `order-staging` beside `order`: the state
    /// machine, the commands and the executor's registry use the new name.
    pub fn renamed(mut self, name: impl Into<String>) -> Result<Self, DefinitionError> {
        self.definition.name = name.into();
        self.definition.validate()?;
        Ok(self)
    }

    /// The declaration.
    pub fn definition(&self) -> &SagaDefinition {
        &self.definition
    }

    /// The saga's name.
    pub fn name(&self) -> &str {
        &self.definition.name
    }

    /// How many copies of the document step `index` grows one Step Functions state may carry
    /// (see [`payload::copies`](crate::analysis::payload::copies)).
    pub fn document_copies(&self, index: usize) -> usize {
        self.copies.get(index).copied().unwrap_or(1)
    }

    /// Checks that the saga can start on `input` (its first document): that it fits Step
    /// Functions' payload limit as often as a group's result may carry it
    /// ([`payload::check_input`](crate::analysis::payload::check_input)), and that the first
    /// step can read its input from it. Both engines call it before anything runs, so a
    /// malformed input (`{"trip_id": 1}` where a string is expected) is refused with the
    /// reason instead of failing the first step. Later steps read outputs of earlier ones too,
    /// so they are checked when they run; one that cannot read its input applied nothing and
    /// is not compensated.
    pub fn check_input(&self, input: &serde_json::Value) -> Result<(), String> {
        crate::analysis::payload::check_input(&self.definition, input)
            .map_err(|e| e.to_string())?;
        let Some(first) = self.handlers.first() else {
            return Ok(());
        };
        first
            .check_input(input)
            .map_err(|e| format!("step `{}` {}", self.definition.steps[0].name, e.message()))
    }

    /// The handler of the step at `index`.
    pub fn handler_at(&self, index: usize) -> &Arc<dyn StepHandler> {
        &self.handlers[index]
    }

    /// The handler of the step called `step`.
    pub fn handler(&self, step: &str) -> Option<&Arc<dyn StepHandler>> {
        self.definition.step(step).map(|(i, _)| &self.handlers[i])
    }
}

struct PendingStep {
    definition: StepDefinition,
    handler: Arc<dyn StepHandler>,
    timeout: Option<Duration>,
    heartbeat: Option<Duration>,
    /// A condition's text that did not parse, reported by `build`.
    bad_condition: Option<crate::ConditionError>,
}

/// Declares a saga step by step; see [`Saga::builder`].
///
/// `compensable`, `pivot` and `retriable` add a step; the methods of the [`StepBuilder`] they
/// return configure that step, and it can add the next step or [`build`](StepBuilder::build).
#[must_use = "a builder does nothing until `build` is called"]
pub struct SagaBuilder {
    name: String,
    version: u32,
    steps: Vec<PendingStep>,
}

impl std::fmt::Debug for SagaBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaBuilder")
            .field("name", &self.name)
            .field("version", &self.version)
            .field(
                "steps",
                &self
                    .steps
                    .iter()
                    .map(|s| &s.definition.name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl SagaBuilder {
    /// Sets the saga's version.
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Adds a compensable step (before the pivot).
    pub fn compensable(self, name: impl Into<String>, step: impl Compensable) -> StepBuilder {
        self.push(
            name.into(),
            StepKind::Compensable,
            compensable_handler(step),
        )
    }

    /// Adds the pivot: the go/no-go step, without compensation.
    pub fn pivot(self, name: impl Into<String>, step: impl Step) -> StepBuilder {
        self.push(name.into(), StepKind::Pivot, forward_handler(step))
    }

    /// Adds a retriable step (after the pivot): retried until it succeeds, never compensated.
    pub fn retriable(self, name: impl Into<String>, step: impl Step) -> StepBuilder {
        self.push(name.into(), StepKind::Retriable, forward_handler(step))
    }

    fn push(mut self, name: String, kind: StepKind, handler: Arc<dyn StepHandler>) -> StepBuilder {
        let participant = Participant::queue(self.name.clone());
        self.steps.push(PendingStep {
            definition: StepDefinition::new(name, kind, participant),
            handler,
            timeout: None,
            heartbeat: None,
            bad_condition: None,
        });
        StepBuilder { saga: self }
    }

    /// Validates the declaration and returns the saga, or the first rule it breaks.
    pub fn build(self) -> Result<Saga, DefinitionError> {
        let mut steps = Vec::with_capacity(self.steps.len());
        let mut handlers = Vec::with_capacity(self.steps.len());
        for mut pending in self.steps {
            let name = &pending.definition.name;
            if let Some(error) = pending.bad_condition {
                return Err(DefinitionError::InvalidCondition {
                    step: name.clone(),
                    reason: error.to_string(),
                });
            }
            let timeout = pending
                .timeout
                .map(|d| whole_seconds(name, "timeout", d))
                .transpose()?;
            let heartbeat = pending
                .heartbeat
                .map(|d| whole_seconds(name, "heartbeat", d))
                .transpose()?;
            pending.definition.set_timing(timeout, heartbeat);
            steps.push(pending.definition);
            handlers.push(pending.handler);
        }
        let definition = SagaDefinition {
            name: self.name,
            version: self.version,
            steps,
        };
        Saga::from_parts(definition, handlers)
    }
}

fn whole_seconds(step: &str, what: &'static str, d: Duration) -> Result<u32, DefinitionError> {
    if d.subsec_nanos() != 0 || d.as_secs() > u64::from(u32::MAX) {
        return Err(DefinitionError::NotWholeSeconds {
            step: step.to_owned(),
            what,
            millis: d.as_millis(),
        });
    }
    Ok(d.as_secs() as u32)
}

/// Configures the step just added; also adds the next step or builds the saga.
#[must_use = "a builder does nothing until `build` is called"]
#[derive(Debug)]
pub struct StepBuilder {
    saga: SagaBuilder,
}

impl StepBuilder {
    fn current(&mut self) -> &mut PendingStep {
        self.saga
            .steps
            .last_mut()
            .expect("a StepBuilder always has a step")
    }

    /// The participant (SQS queue name) that runs this step. Defaults to the saga's name.
    pub fn participant(mut self, queue: impl Into<String>) -> Self {
        let step = self.current();
        step.definition.participant = Participant::queue(queue);
        self
    }

    /// Runs this step as a Lambda function instead of a queue worker.
    pub fn lambda(mut self, function: impl Into<String>) -> Self {
        let step = self.current();
        step.definition.participant = Participant::lambda(function);
        self
    }

    /// The retry policy of the step's action.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.current().definition.retry = policy;
        self
    }

    /// The retry policy of the step's compensation.
    pub fn compensation_retry(mut self, policy: RetryPolicy) -> Self {
        self.current().definition.compensation_retry = policy;
        self
    }

    /// How long one invocation may take (whole seconds; default 5 minutes).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.current().timeout = Some(timeout);
        self
    }

    /// How often a long-running participant must heartbeat (whole seconds, below the timeout;
    /// default 1 minute, or half the timeout when that is shorter).
    pub fn heartbeat(mut self, heartbeat: Duration) -> Self {
        self.current().heartbeat = Some(heartbeat);
        self
    }

    /// Skips this step's own compensation when the step itself fails (by default it runs, since a
    /// failure does not prove nothing happened). Use it only when a failed invocation provably
    /// changes nothing.
    pub fn skip_compensation_on_failure(mut self) -> Self {
        self.current().definition.compensate_on_failure = false;
        self
    }

    /// Runs this step only when `condition` holds on the saga document (the input, and the
    /// outputs of earlier steps under `steps`); otherwise the step is skipped, and not
    /// compensated. A [`Condition`](crate::Condition) or its text, as in `"car_wanted"` or
    /// `"nights > 2 && steps.flight.class == \"business\""` (a text that does not parse is
    /// refused by `build`).
    pub fn when(mut self, condition: impl crate::IntoCondition) -> Self {
        let step = self.current();
        match condition.into_condition() {
            Ok(condition) => {
                step.definition.condition = Some(condition);
                step.bad_condition = None;
            }
            Err(error) => step.bad_condition = Some(error),
        }
        self
    }

    /// Runs this step in the parallel group `group`, in a branch of its own named after the
    /// step: adjacent steps of one group run at the same time, and the next stage starts once
    /// all of them have ended. See [`in_branch`](Self::in_branch) for a branch of several steps.
    pub fn in_group(mut self, group: impl Into<String>) -> Self {
        let step = self.current();
        let branch = step.definition.name.clone();
        step.definition.group = Some(GroupBranch::new(group, branch));
        self
    }

    /// Runs this step in branch `branch` of the parallel group `group`: the steps of one
    /// branch run one after the other, the branches of a group at the same time.
    pub fn in_branch(mut self, group: impl Into<String>, branch: impl Into<String>) -> Self {
        self.current().definition.group = Some(GroupBranch::new(group, branch));
        self
    }

    /// Adds the next step: compensable.
    pub fn compensable(self, name: impl Into<String>, step: impl Compensable) -> StepBuilder {
        self.saga.compensable(name, step)
    }

    /// Adds the next step: the pivot.
    pub fn pivot(self, name: impl Into<String>, step: impl Step) -> StepBuilder {
        self.saga.pivot(name, step)
    }

    /// Adds the next step: retriable.
    pub fn retriable(self, name: impl Into<String>, step: impl Step) -> StepBuilder {
        self.saga.retriable(name, step)
    }

    /// Validates the declaration and returns the saga.
    pub fn build(self) -> Result<Saga, DefinitionError> {
        self.saga.build()
    }
}
