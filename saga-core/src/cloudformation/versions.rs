//! Deploys that never break sagas in flight: every stack update that changes the definition
//! publishes the new revision as a version, kept when the next one replaces it, and moves the
//! alias new sagas start on (the front door, the trigger and `DeployedSaga` start there), while
//! sagas in flight finish on the version they started on.

use serde_json::{Map, Value, json};

use super::{get_att, reference};
use crate::definition::SagaDefinition;

/// The alias every deploy moves to the version it publishes: sagas start through it.
pub const ALIAS: &str = "live";

/// Adds the version of `definition`'s state machine and the alias that points at it.
pub(super) fn add(
    definition: &SagaDefinition,
    resources: &mut Map<String, Value>,
    outputs: &mut Map<String, Value>,
) {
    resources.insert(
        "StateMachineVersion".into(),
        json!({
            "Type": "AWS::StepFunctions::StateMachineVersion",
            // A changed definition is a new revision, which replaces this resource: the old
            // version is kept, so the sagas that run it finish on it. (Deleting the stack
            // deletes the state machine, and Step Functions its versions with it.)
            "UpdateReplacePolicy": "Retain",
            "DeletionPolicy": "Retain",
            "Properties": {
                "StateMachineArn": reference("StateMachine"),
                "StateMachineRevisionId": get_att("StateMachine", "StateMachineRevisionId"),
                "Description": format!(
                    "saga `{}` version {}", definition.name, definition.version
                ),
            },
        }),
    );
    resources.insert(
        "StateMachineAlias".into(),
        json!({
            "Type": "AWS::StepFunctions::StateMachineAlias",
            "Properties": {
                "Name": ALIAS,
                "Description": "where new sagas start; every deploy moves it",
                "RoutingConfiguration": [
                    { "StateMachineVersionArn": reference("StateMachineVersion"), "Weight": 100 }
                ],
            },
        }),
    );
    outputs.insert(
        "StateMachineAliasArn".into(),
        json!({
            "Description": "Where sagas start: the alias of the newest version",
            "Value": reference("StateMachineAlias"),
        }),
    );
}

/// Who may start sagas: `states:StartExecution` on the alias, and on the state machine (whose
/// ARN, unqualified, Step Functions also authorises a start through an alias by).
pub(super) fn start_targets() -> Vec<Value> {
    vec![reference("StateMachine"), reference("StateMachineAlias")]
}
