//! Versions of a saga's state machine: every deploy publishes one and moves the alias
//! [`ALIAS`] to it, sagas start through the alias and finish on the version they started on,
//! and a deploy first looks at what the sagas in flight run, to refuse stranding them.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_sfn::types::{ExecutionStatus as SdkStatus, RoutingConfigurationListItem};
use saga_core::protocol::{Sent, commands_sent};
use serde_json::Value;

use super::StepFunctions;
use crate::error::AwsError;

/// The alias every deploy moves to the version it publishes, and sagas start through (the
/// template's too).
pub use saga_core::cloudformation::ALIAS;

/// The ARN of the state machine an ARN names, without a version or alias qualifier:
/// `arn:aws:states:us-east-1:123456789012:stateMachine:order` for `...:stateMachine:order:live`
/// or `...:stateMachine:order:3`.
pub fn unqualified(arn: &str) -> &str {
    match arn.match_indices(':').nth(6) {
        Some((qualifier, _)) => &arn[..qualifier],
        None => arn,
    }
}

/// The name of the state machine an ARN names (the saga's name, for a deployed saga).
pub fn machine_name(arn: &str) -> &str {
    unqualified(arn).rsplit(':').next().unwrap_or_default()
}

/// The sagas in flight on one version of a state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// The version's ARN; `None` for executions started without a version (on the state
    /// machine's ARN itself, as deploys did before they published versions).
    pub version_arn: Option<String>,
    /// The ids (execution names) of the sagas running on it, sorted.
    pub saga_ids: Vec<String>,
    /// Every command its definition can send.
    pub sends: BTreeSet<Sent>,
}

impl InFlight {
    /// `version 3`, or `no version`.
    pub fn label(&self) -> String {
        match &self.version_arn {
            Some(arn) => format!("version {}", arn.rsplit(':').next().unwrap_or(arn)),
            None => "no version".to_owned(),
        }
    }
}

impl StepFunctions {
    /// Publishes the state machine's current revision as a version (once: publishing a
    /// revision that has a version returns it) and points [`ALIAS`] at it, creating the alias
    /// the first time. Returns the version's ARN and the alias's.
    pub(super) async fn publish(
        &self,
        arn: &str,
        description: &str,
    ) -> Result<(String, String), AwsError> {
        let version = self
            .client
            .publish_state_machine_version()
            .state_machine_arn(arn)
            .description(description)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PublishStateMachineVersion", e))?
            .state_machine_version_arn;
        let route = RoutingConfigurationListItem::builder()
            .state_machine_version_arn(&version)
            .weight(100)
            .build()
            .map_err(|e| AwsError::Config(format!("routing configuration: {e}")))?;
        let alias = format!("{arn}:{ALIAS}");
        let described = self
            .client
            .describe_state_machine_alias()
            .state_machine_alias_arn(&alias)
            .send()
            .await;
        match described {
            Ok(_) => {
                self.client
                    .update_state_machine_alias()
                    .state_machine_alias_arn(&alias)
                    .routing_configuration(route)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("UpdateStateMachineAlias", e))?;
                Ok((version, alias))
            }
            Err(e) => {
                let error = AwsError::from_sdk("DescribeStateMachineAlias", e);
                if error.code() != Some("ResourceNotFound") {
                    return Err(error);
                }
                let created = self
                    .client
                    .create_state_machine_alias()
                    .name(ALIAS)
                    .description("where new sagas start; every deploy moves it")
                    .routing_configuration(route)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("CreateStateMachineAlias", e))?;
                Ok((version, created.state_machine_alias_arn))
            }
        }
    }

    /// The ARN sagas start on: the alias [`ALIAS`] of the state machine `arn` if it has one,
    /// else `arn` itself (a state machine deployed before deploys published versions).
    pub async fn start_arn(&self, arn: &str) -> Result<String, AwsError> {
        let alias = format!("{}:{ALIAS}", unqualified(arn));
        match self
            .client
            .describe_state_machine_alias()
            .state_machine_alias_arn(&alias)
            .send()
            .await
        {
            Ok(_) => Ok(alias),
            Err(e) => {
                let error = AwsError::from_sdk("DescribeStateMachineAlias", e);
                match error.code() {
                    Some("ResourceNotFound") => Ok(arn.to_owned()),
                    _ => Err(error),
                }
            }
        }
    }

    /// The sagas running on the state machine `arn`, by the version they run, each with what
    /// that version's definition can send (one `DescribeStateMachine` per version; one
    /// `DescribeStateMachineForExecution` per execution started without a version).
    pub async fn in_flight(&self, arn: &str) -> Result<Vec<InFlight>, AwsError> {
        let mut by_version: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
        let mut pages = self
            .client
            .list_executions()
            .state_machine_arn(unqualified(arn))
            .status_filter(SdkStatus::Running)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ListExecutions", e))?;
            for execution in page.executions {
                by_version
                    .entry(execution.state_machine_version_arn)
                    .or_default()
                    .push(execution.name);
            }
        }
        let mut in_flight = Vec::new();
        for (version_arn, mut saga_ids) in by_version {
            saga_ids.sort();
            let mut sends = BTreeSet::new();
            match &version_arn {
                Some(version) => {
                    let described = self
                        .client
                        .describe_state_machine()
                        .state_machine_arn(version)
                        .send()
                        .await
                        .map_err(|e| AwsError::from_sdk("DescribeStateMachine", e))?;
                    sends.extend(sent_by("DescribeStateMachine", &described.definition)?);
                }
                None => {
                    for saga_id in &saga_ids {
                        let described = self
                            .client
                            .describe_state_machine_for_execution()
                            .execution_arn(super::execution_arn(arn, saga_id))
                            .send()
                            .await
                            .map_err(|e| {
                                AwsError::from_sdk("DescribeStateMachineForExecution", e)
                            })?;
                        sends.extend(sent_by(
                            "DescribeStateMachineForExecution",
                            &described.definition,
                        )?);
                    }
                }
            }
            in_flight.push(InFlight {
                version_arn,
                saga_ids,
                sends,
            });
        }
        Ok(in_flight)
    }
}

fn sent_by(operation: &'static str, definition: &str) -> Result<BTreeSet<Sent>, AwsError> {
    serde_json::from_str::<Value>(definition)
        .map(|definition| commands_sent(&definition))
        .map_err(|e| AwsError::Unexpected {
            operation,
            message: format!("a definition that is not JSON: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_arns_name_their_state_machine() {
        let machine = "arn:aws:states:us-east-1:123456789012:stateMachine:order";
        for arn in [machine, &format!("{machine}:live"), &format!("{machine}:3")] {
            assert_eq!(unqualified(arn), machine);
            assert_eq!(machine_name(arn), "order");
        }
        let in_flight = InFlight {
            version_arn: Some(format!("{machine}:3")),
            saga_ids: vec![],
            sends: BTreeSet::new(),
        };
        assert_eq!(in_flight.label(), "version 3");
    }
}
