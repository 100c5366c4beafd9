//! Configuring a deploy: the saga's queues, table, role and bindings, and the older versions
//! whose sagas in flight the workers still answer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_config::SdkConfig;
use saga_core::{Participant, Saga, SagaDefinition};

use super::{DeployedSaga, ROLE_ENV, queue_participants};
use crate::error::AwsError;
use crate::queues::{QueueOptions, Queues, queue_name};
use crate::runner::Handlers;
use crate::state_machine::{Bindings, InFlight, StepFunctions};

/// Configures a deploy: see [`DeployedSaga::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `deploy` is called"]
pub struct DeployBuilder {
    config: SdkConfig,
    definition: SagaDefinition,
    saga: Option<Arc<Saga>>,
    role_arn: Option<String>,
    queue_options: QueueOptions,
    create_queues: bool,
    bindings: Bindings,
    table: Option<String>,
    older: Vec<Arc<Saga>>,
    allow_stranded: bool,
}

impl DeployBuilder {
    /// The IAM role the state machine runs as (default: the one `SAGA_ROLE_ARN` names).
    pub fn role_arn(mut self, role_arn: impl Into<String>) -> Self {
        self.role_arn = Some(role_arn.into());
        self
    }

    /// How the participant queues are made (default [`QueueOptions::default`]).
    pub fn queue_options(mut self, options: QueueOptions) -> Self {
        self.queue_options = options;
        self
    }

    /// Creates no queue and no table: every participant needs a [`queue_url`](Self::queue_url)
    /// or a binding.
    pub fn existing_queues(mut self) -> Self {
        self.create_queues = false;
        self.table = None;
        self
    }

    /// Sends the commands of `participant` to the existing queue at `url` instead of creating
    /// `<saga>-<participant>`.
    pub fn queue_url(mut self, participant: &str, url: impl Into<String>) -> Self {
        let key = saga_core::asl::substitution_key(&Participant::queue(participant));
        self.bindings.insert(key, url.into());
        self
    }

    /// Invokes the Lambda function `function` (a step's `lambda = "..."`) at `arn`.
    pub fn lambda_arn(mut self, function: &str, arn: impl Into<String>) -> Self {
        let key = saga_core::asl::substitution_key(&Participant::lambda(function));
        self.bindings.insert(key, arn.into());
        self
    }

    /// Values for the definition's `${...}` substitutions by key, as the command line's
    /// `--bind key=value` gives them.
    pub fn bindings(mut self, bindings: Bindings) -> Self {
        self.bindings.extend(bindings);
        self
    }

    /// Keeps the participants' idempotency records in the table `table`, created if missing
    /// (default: `<saga>-idempotency`, which a worker of one saga finds by itself).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// Keeps the handlers of `saga`, another version of this saga (`#[saga(version = N)]`: an
    /// older one, or the newer one a rollback leaves), in the workers: they answer the
    /// commands of its sagas still in flight, each with its own version's handlers, while new
    /// sagas run this version. [`deploy`](Self::deploy) refuses another saga, or this version.
    pub fn older_version(mut self, saga: &Saga) -> Self {
        self.older.push(Arc::new(saga.clone()));
        self
    }

    /// Deploys even if sagas in flight run a version whose commands no handler of this build
    /// answers (see [`AwsError::WouldStrand`]): their commands then go to the dead-letter
    /// queues, with that reason, and each such step times out (then is retried, compensated
    /// or reported stuck, as its policy says).
    pub fn allow_stranded(mut self) -> Self {
        self.allow_stranded = true;
        self
    }

    /// Creates the queues and the table that are missing, then the state machine (or updates it
    /// when its definition changed), publishes it as a version and moves the alias new sagas
    /// start on to it. Deploying again changes nothing. Refused, before anything changes, when
    /// sagas in flight run a version this build has no handlers for (unless
    /// [`allow_stranded`](Self::allow_stranded)).
    pub async fn deploy(self) -> Result<DeployedSaga, AwsError> {
        let role = match self.role_arn {
            Some(role) => role,
            None => std::env::var(ROLE_ENV).map_err(|_| {
                AwsError::Config(format!(
                    "the state machine needs an IAM role: call `role_arn` or set {ROLE_ENV}"
                ))
            })?,
        };
        let name = self.definition.name.clone();
        for older in &self.older {
            other_version_of(&self.definition, older)?;
        }
        let sfn = StepFunctions::new(&self.config, role);
        let served = served(&self.definition, &self.older);
        let found = sfn.arn_of(&name).await?;
        if let Some(arn) = &found {
            let reasons = stranded(&sfn.in_flight(arn).await?, &served);
            if !reasons.is_empty() && !self.allow_stranded {
                return Err(AwsError::WouldStrand {
                    saga: name,
                    reasons,
                });
            }
        }
        let mut bindings = self.bindings;
        let mut queues = BTreeMap::new();
        for participant in served_queues(served.all()) {
            let key = saga_core::asl::substitution_key(&Participant::queue(&participant));
            if let Some(url) = bindings.get(&key) {
                queues.insert(participant, url.clone());
            } else if self.create_queues {
                let queue = Queues::new(&self.config)
                    .create(&queue_name(&name, &participant), &self.queue_options)
                    .await?;
                bindings.insert(key, queue.url.clone());
                queues.insert(participant, queue.url);
            }
        }
        if let Some(table) = &self.table {
            crate::dynamodb::DynamoDbIdempotencyStore::new(&self.config, table)
                .create_table()
                .await?;
        }
        let deployment = sfn.deploy_over(&self.definition, &bindings, found).await?;
        Ok(DeployedSaga {
            config: self.config,
            sfn,
            name,
            arn: deployment.arn,
            start_arn: deployment.alias_arn,
            version_arn: Some(deployment.version_arn),
            definition: self.definition,
            change: Some(deployment.change),
            queues,
            table: self.table,
            saga: self.saga,
            older: self.older,
        })
    }
}

impl DeployedSaga {
    /// Configures the deploy of `saga` with the SDK configuration `config`: by default its
    /// participants' queues `<saga>-<participant>` (with dead-letter queues) and the table
    /// `<saga>-idempotency` are created, and the role is `SAGA_ROLE_ARN`'s. The deployed saga
    /// keeps `saga`'s handlers for its workers and checks every input against them.
    pub fn builder(config: &SdkConfig, saga: &Saga) -> DeployBuilder {
        let mut builder = Self::builder_for(config, saga.definition());
        builder.saga = Some(Arc::new(saga.clone()));
        builder
    }

    /// Like [`builder`](Self::builder), from the declaration alone (a deploy by an operator
    /// without the handlers): [`with_saga`](Self::with_saga) gives them later.
    pub fn builder_for(config: &SdkConfig, definition: &SagaDefinition) -> DeployBuilder {
        DeployBuilder {
            config: config.clone(),
            definition: definition.clone(),
            saga: None,
            role_arn: None,
            queue_options: QueueOptions::default(),
            create_queues: true,
            bindings: Bindings::new(),
            table: Some(crate::store::default_table_name(&definition.name)),
            older: Vec::new(),
            allow_stranded: false,
        }
    }
}

/// Why the sagas `in_flight` could not finish with the handlers `served`: per version, each
/// distinct reason a command it can send finds no handler, with how many sagas run it.
pub(crate) fn stranded(in_flight: &[InFlight], served: &Handlers<SagaDefinition>) -> Vec<String> {
    let mut reasons = Vec::new();
    for group in in_flight {
        let unanswered: BTreeSet<String> = group
            .sends
            .iter()
            .filter_map(|sent| served.unanswered(sent))
            .collect();
        let mut ids: Vec<&str> = group.saga_ids.iter().take(3).map(String::as_str).collect();
        if group.saga_ids.len() > ids.len() {
            ids.push("...");
        }
        for reason in unanswered {
            reasons.push(format!(
                "{} saga(s) on {} ({}): {reason}",
                group.saga_ids.len(),
                group.label(),
                ids.join(", ")
            ));
        }
    }
    reasons
}

/// The declarations the workers of a deploy answer: `definition`'s and the `older` versions'.
pub(super) fn served(definition: &SagaDefinition, older: &[Arc<Saga>]) -> Handlers<SagaDefinition> {
    let mut served = Handlers::default();
    served.insert(definition.clone());
    for older in older {
        served.insert(older.definition().clone());
    }
    served
}

/// Whether `other` is another version of the saga `definition` declares; else why not.
pub(super) fn other_version_of(definition: &SagaDefinition, other: &Saga) -> Result<(), AwsError> {
    let theirs = other.definition();
    if theirs.name != definition.name {
        return Err(AwsError::Config(format!(
            "an older version of saga `{}` was asked for, and saga `{}` given",
            definition.name, theirs.name
        )));
    }
    if theirs.version == definition.version {
        return Err(AwsError::Config(format!(
            "saga `{}` version {} was given as an older version of itself: give the other \
             version's declaration (`#[saga(version = N)]` with another `N`)",
            definition.name, definition.version
        )));
    }
    Ok(())
}

/// The queue participants of every served version, each once.
fn served_queues<'a>(served: impl Iterator<Item = &'a SagaDefinition>) -> BTreeSet<String> {
    served.flat_map(queue_participants).collect()
}

#[cfg(test)]
mod tests {
    use saga_core::protocol::Sent;
    use saga_core::{Action, StepDefinition, StepKind};

    use super::*;

    fn order(version: u32) -> SagaDefinition {
        SagaDefinition {
            name: "order".into(),
            version,
            steps: vec![StepDefinition::new(
                "reserve",
                StepKind::Compensable,
                Participant::queue("inventory"),
            )],
        }
    }

    fn in_flight(version: u32, sagas: usize) -> InFlight {
        InFlight {
            version_arn: Some(format!("arn:aws:states:r:1:stateMachine:order:{version}")),
            saga_ids: (0..sagas).map(|i| format!("o-{i}")).collect(),
            sends: [Action::Execute, Action::Compensate]
                .into_iter()
                .map(|action| Sent {
                    saga: "order".into(),
                    saga_version: Some(version),
                    step: "reserve".into(),
                    action,
                })
                .collect(),
        }
    }

    #[test]
    fn sagas_in_flight_on_a_version_without_handlers_would_be_stranded() {
        let mut served = Handlers::default();
        served.insert(order(2));
        assert_eq!(stranded(&[in_flight(2, 1)], &served), Vec::<String>::new());
        assert_eq!(
            stranded(&[in_flight(1, 4), in_flight(2, 1)], &served),
            [
                "4 saga(s) on version 1 (o-0, o-1, o-2, ...): no handlers for version 1 of saga \
              `order` here (this participant has version 2): run a worker built with version \
              1's declaration"
            ]
        );
        served.insert(order(1));
        assert!(stranded(&[in_flight(1, 4)], &served).is_empty());
    }

    struct Noop;

    impl saga_core::Step for Noop {
        type Input = serde_json::Value;
        type Output = serde_json::Value;

        async fn execute(
            &self,
            _: &saga_core::StepContext<'_>,
            _: serde_json::Value,
        ) -> Result<serde_json::Value, saga_core::StepError> {
            Ok(serde_json::Value::Null)
        }
    }

    #[test]
    fn an_older_version_is_another_version_of_the_same_saga() {
        let saga = |name: &str, version| {
            Saga::builder(name)
                .version(version)
                .pivot("ship", Noop)
                .build()
                .unwrap()
        };
        let current = order(2);
        assert!(other_version_of(&current, &saga("order", 1)).is_ok());
        assert_eq!(
            other_version_of(&current, &saga("trip", 1))
                .unwrap_err()
                .to_string(),
            "an older version of saga `order` was asked for, and saga `trip` given"
        );
        assert!(
            other_version_of(&current, &saga("order", 2))
                .unwrap_err()
                .to_string()
                .contains("saga `order` version 2 was given as an older version of itself"),
        );
    }
}
