//! What `deploy` and the commands on a deployed saga share: the queues `deploy --create-queues`
//! makes and the state machine a saga is deployed as.

use saga_aws::{Queues, StepFunctions};
use saga_core::{Participant, SagaDefinition};

use super::{Failure, aws};

/// The queue `deploy --create-queues` makes for `participant` of `saga`.
pub fn queue_name(saga: &str, participant: &str) -> String {
    format!("{saga}-{participant}")
}

pub(super) fn queue_participants(definition: &SagaDefinition) -> Vec<String> {
    let mut names: Vec<String> = definition
        .steps
        .iter()
        .filter_map(|s| match &s.participant {
            Participant::Queue(q) => Some(q.clone()),
            Participant::Lambda(_) => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

pub(super) async fn deployed(
    sfn: &StepFunctions,
    definition: &SagaDefinition,
) -> Result<String, Failure> {
    sfn.arn_of(&definition.name)
        .await
        .map_err(aws)?
        .ok_or_else(|| {
            Failure::Error(format!(
                "saga `{}` is not deployed here; run `deploy` first",
                definition.name
            ))
        })
}

pub(super) async fn create_participant_queues(
    config: &saga_aws::SdkConfig,
    definition: &SagaDefinition,
) -> Result<Vec<(String, String)>, Failure> {
    let queues = Queues::new(config);
    let mut created = Vec::new();
    for participant in queue_participants(definition) {
        let name = queue_name(&definition.name, &participant);
        let queue = queues.create(&name, 5, 60).await.map_err(aws)?;
        created.push((participant, queue.url));
    }
    Ok(created)
}
