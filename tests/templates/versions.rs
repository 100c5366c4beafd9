//! Deploys that never break sagas in flight: the template publishes the state machine's
//! revision as a version, kept when a changed definition replaces it, and points the alias
//! new sagas start on (the front door's and the trigger's) at it.

use saga::cloudformation::{ALIAS, FrontDoor, TemplateOptions, template};
use serde_json::json;

use crate::order;

#[test]
fn every_deploy_publishes_a_version_and_moves_the_alias_new_sagas_start_on() {
    let definition = order::order_saga(&[]).definition().clone();
    let options = TemplateOptions {
        front_door: Some(FrontDoor::new(json!({ "type": "object" }))),
        ..crate::order_trigger()
    };
    let t = template(&definition, &options);
    let r = &t["Resources"];

    let version = &r["StateMachineVersion"];
    assert_eq!(version["Type"], "AWS::StepFunctions::StateMachineVersion");
    // A new revision replaces the version; the old one stays for the sagas that run it.
    assert_eq!(version["UpdateReplacePolicy"], "Retain");
    assert_eq!(
        version["Properties"]["StateMachineRevisionId"],
        json!({ "Fn::GetAtt": ["StateMachine", "StateMachineRevisionId"] })
    );
    assert_eq!(
        version["Properties"]["StateMachineArn"],
        json!({ "Ref": "StateMachine" })
    );
    assert_eq!(
        version["Properties"]["Description"],
        format!("saga `order` version {}", definition.version)
    );

    let alias = &r["StateMachineAlias"];
    assert_eq!(alias["Type"], "AWS::StepFunctions::StateMachineAlias");
    assert_eq!(alias["Properties"]["Name"], ALIAS);
    assert_eq!(
        alias["Properties"]["RoutingConfiguration"],
        json!([{ "StateMachineVersionArn": { "Ref": "StateMachineVersion" }, "Weight": 100 }])
    );
    assert_eq!(
        t["Outputs"]["StateMachineAliasArn"]["Value"],
        json!({ "Ref": "StateMachineAlias" })
    );

    // Whoever starts sagas may start them on the alias.
    for role in ["TriggerRole", "ApiRole"] {
        let statements = &r[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
        let start = statements
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Action"] == json!(["states:StartExecution"]))
            .unwrap_or_else(|| panic!("{role} starts no saga"));
        assert_eq!(
            start["Resource"],
            json!([{ "Ref": "StateMachine" }, { "Ref": "StateMachineAlias" }]),
            "{role}"
        );
    }
}
