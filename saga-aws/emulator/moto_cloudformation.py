"""moto 5.2.5's CloudFormation made to create a saga's stack as AWS does (imported by
moto_server.py before the server starts, after Step Functions execution is switched on).

Each fix names the AWS behaviour it restores:

1. AWS::StepFunctions::StateMachine. The Step Functions API serves moto's parser backend when
   execution is on, but CloudFormation created, updated and deleted machines in the plain one,
   so a stack's machine was never listed. CloudFormation also dropped DefinitionSubstitutions
   (AWS substitutes every `${key}` of DefinitionString, and a boolean as `true`/`false`:
   https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-stepfunctions-statemachine.html),
   LoggingConfiguration, TracingConfiguration and StateMachineType. And a second stack naming an
   existing machine silently shared it; AWS refuses a name in use (StateMachineAlreadyExists).
2. AWS::Events::EventBus: `Ref` returns the bus's name (same page set, EventBus). moto's bus had
   no physical id, so `Ref` gave a Python object and every rule on the bus failed (HTTP 500).
3. AWS::CloudWatch::Alarm and AWS::SQS::QueuePolicy, which moto's CloudFormation skipped: the
   alarm is created (PutMetricAlarm) and the policy set on its queues (SetQueueAttributes).
4. AWS::StepFunctions::StateMachineVersion and ::StateMachineAlias, which it skipped too, and the
   machine's `Fn::GetAtt` StateMachineRevisionId (and Arn); see that section.
"""

import json

from moto.cloudwatch.models import cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.events.models import EventBus
from moto.sqs.models import sqs_backends
from moto.stepfunctions import models as sfn_models
from moto.stepfunctions.exceptions import StateMachineDoesNotExist
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

# 1. One backend: the one the API serves.
sfn_models.stepfunctions_backends = stepfunctions_parser_backends


def _api_keys(value):  # type: ignore[no-untyped-def]
    """CloudFormation's keys as the API's (`Level` -> `level`)."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _api_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_api_keys(v) for v in value]
    return value


def _definition(properties):  # type: ignore[no-untyped-def]
    """DefinitionString (or Definition) with DefinitionSubstitutions applied."""
    text = properties.get("DefinitionString")
    if text is None:
        text = json.dumps(properties.get("Definition", {}))
    for key, value in (properties.get("DefinitionSubstitutions") or {}).items():
        value = str(value).lower() if isinstance(value, bool) else str(value)
        text = text.replace("${" + key + "}", value)
    return text


def _create_machine(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
    properties = cloudformation_json["Properties"]
    backend = stepfunctions_parser_backends[account_id][region_name]
    name = properties.get("StateMachineName", resource_name)
    arn = f"arn:aws:states:{region_name}:{account_id}:stateMachine:{name}"
    try:
        backend.describe_state_machine(arn)
    except StateMachineDoesNotExist:
        pass
    else:
        raise ValueError(f"StateMachineAlreadyExists: State Machine Already Exists: '{arn}'")
    return backend.create_state_machine(
        name,
        _definition(properties),
        properties.get("RoleArn", ""),
        tags=sfn_models.cfn_to_api_tags(properties.get("Tags", [])),
        loggingConfiguration=_api_keys(properties.get("LoggingConfiguration")),
        tracingConfiguration=_api_keys(properties.get("TracingConfiguration")),
        encryptionConfiguration=_api_keys(properties.get("EncryptionConfiguration")),
        sm_type=properties.get("StateMachineType"),
    )


_update_machine = sfn_models.StateMachine.update_from_cloudformation_json.__func__


# (moto passes these by name: UpdateStack of a machine failed, HTTP 500, while they were not
# named as moto's own.)
def _update_machine_substituted(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):  # type: ignore[no-untyped-def]
    properties = cloudformation_json.setdefault("Properties", {})
    if "DefinitionString" in properties or "Definition" in properties:
        properties["DefinitionString"] = _definition(properties)
    return _update_machine(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name)


sfn_models.StateMachine.create_from_cloudformation_json = classmethod(_create_machine)
sfn_models.StateMachine.update_from_cloudformation_json = classmethod(_update_machine_substituted)

# 2. Ref of a bus is its name.
EventBus.physical_resource_id = property(lambda self: self.name)


# 3. The resource types moto's CloudFormation skipped. moto keys its models by the service in
#    `__module__`, and collects them on the first CreateStack: this module is imported before.
class _Alarm(CloudFormationModel):
    """AWS::CloudWatch::Alarm: a real alarm."""

    __module__ = "moto.cloudwatch.models"

    def __init__(self, name):  # type: ignore[no-untyped-def]
        self.physical_resource_id = name

    @staticmethod
    def cloudformation_type():  # type: ignore[no-untyped-def]
        return "AWS::CloudWatch::Alarm"

    @staticmethod
    def cloudformation_name_type():  # type: ignore[no-untyped-def]
        return "AlarmName"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=p.get("AlarmName", resource_name),
            namespace=p.get("Namespace"),
            metric_name=p.get("MetricName"),
            comparison_operator=p["ComparisonOperator"],
            evaluation_periods=p["EvaluationPeriods"],
            period=p.get("Period"),
            threshold=p.get("Threshold"),
            statistic=p.get("Statistic"),
            description=p.get("AlarmDescription"),
            dimensions=p.get("Dimensions", []),
            alarm_actions=p.get("AlarmActions", []),
            ok_actions=p.get("OKActions"),
            treat_missing_data=p.get("TreatMissingData"),
            actions_enabled=p.get("ActionsEnabled", True),
        )
        return cls(alarm.name)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):  # type: ignore[no-untyped-def]
        cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])


class _QueuePolicy(CloudFormationModel):
    """AWS::SQS::QueuePolicy: the policy set on each of its queues."""

    __module__ = "moto.sqs.models"

    def __init__(self, name):  # type: ignore[no-untyped-def]
        self.physical_resource_id = name

    @staticmethod
    def cloudformation_type():  # type: ignore[no-untyped-def]
        return "AWS::SQS::QueuePolicy"

    @staticmethod
    def cloudformation_name_type():  # type: ignore[no-untyped-def]
        return ""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        for url in p["Queues"]:
            sqs_backends[account_id][region_name].set_queue_attributes(
                url.rsplit("/", 1)[-1], {"Policy": json.dumps(p["PolicyDocument"])}
            )
        return cls(resource_name)


# 4. Versions and aliases, as AWS's own resource providers make them
#    (https://github.com/aws-cloudformation/aws-cloudformation-resource-providers-stepfunctions,
#    statemachineversion/ and statemachinealias/; the pages are
#    https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-stepfunctions-statemachineversion.html
#    and aws-resource-stepfunctions-statemachinealias.html next to it):
#    - the machine's StateMachineRevisionId is its revisionId, INITIAL before its first update
#      (statemachine/.../ResourceModelUtils.java; "To specify the initial state machine
#      revision, set the value as INITIAL");
#    - a version is PublishStateMachineVersion(StateMachineArn, StateMachineRevisionId,
#      Description), refused (AlreadyExists) when the newest version already has the machine's
#      current revision; Ref and Arn are its ARN; every property change replaces it (the schema
#      has no update handler; the page: "Update requires: Replacement");
#    - an alias is CreateStateMachineAlias(Name, RoutingConfiguration or DeploymentPreference:
#      that version at weight 100), refused when the name exists; Ref and Arn are its ARN; a new
#      Name replaces it, the rest is UpdateStateMachineAlias; DeploymentPreference ALL_AT_ONCE
#      moves all traffic at once. LINEAR and CANARY shift it over minutes, watching alarms: not
#      emulated (an update asking for one fails);
#    - a replaced resource is deleted once the update is done (CloudFormation's clean-up, after
#      aliases have moved off an old version), unless its UpdateReplacePolicy is Retain.
#    moto's UpdateStack updates only resources whose template text changed; a version whose
#    StateMachineRevisionId is `Fn::GetAtt [Machine, StateMachineRevisionId]`, or an alias routing
#    to `Ref Version`, changes through its references, so those are compared resolved as well.
import copy  # noqa: E402
import threading  # noqa: E402

from moto.cloudformation.exceptions import UnformattedGetAttTemplateException, ValidationError  # noqa: E402
from moto.cloudformation.parsing import ResourceMap, clean_json, parse_and_update_resource  # noqa: E402

import moto_stepfunctions_versions  # noqa: E402,F401  (the API these resources call)

_machine_attribute = sfn_models.StateMachine.get_cfn_attribute
_machine_has_attribute = sfn_models.StateMachine.has_cfn_attr.__func__


def _machine_get_att(self, name):  # type: ignore[no-untyped-def]
    if name == "StateMachineRevisionId":
        return self.revision_id or "INITIAL"
    return self.arn if name == "Arn" else _machine_attribute(self, name)


sfn_models.StateMachine.get_cfn_attribute = _machine_get_att
sfn_models.StateMachine.has_cfn_attr = classmethod(
    lambda cls, name: name in ("Arn", "StateMachineRevisionId") or _machine_has_attribute(cls, name)
)
_replaced = threading.local()  # what the stack update under way has replaced


def _sfn(account_id, region_name):  # type: ignore[no-untyped-def]
    return stepfunctions_parser_backends[account_id][region_name]


class _Published:
    """What a version and an alias share (each derives from CloudFormationModel itself)."""

    def __init__(self, arn, cloudformation_json, account_id, region_name):  # type: ignore[no-untyped-def]
        self.arn = self.physical_resource_id = arn
        self.properties = copy.deepcopy(cloudformation_json.get("Properties", {}))
        self.where = (account_id, region_name)

    @classmethod
    def has_cfn_attr(cls, name):  # type: ignore[no-untyped-def]
        return name == "Arn"

    def get_cfn_attribute(self, name):  # type: ignore[no-untyped-def]
        if name == "Arn":
            return self.arn
        raise UnformattedGetAttTemplateException()

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):  # type: ignore[no-untyped-def]
        properties = cloudformation_json.get("Properties", {})
        if properties == original_resource.properties:
            return original_resource
        if not cls.replaces(original_resource.properties, properties):
            return cls.update(original_resource, cloudformation_json)
        new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)
        if cloudformation_json.get("UpdateReplacePolicy") != "Retain":
            getattr(_replaced, "resources", []).append(original_resource)
        return new

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):  # type: ignore[no-untyped-def]
        cls.remove(_sfn(account_id, region_name), resource_name)

    def delete(self, account_id, region_name):  # type: ignore[no-untyped-def]
        self.remove(_sfn(account_id, region_name), self.arn)


class _Version(_Published, CloudFormationModel):
    """AWS::StepFunctions::StateMachineVersion."""

    __module__ = "moto.stepfunctions.models"

    @staticmethod
    def cloudformation_type():  # type: ignore[no-untyped-def]
        return "AWS::StepFunctions::StateMachineVersion"

    @staticmethod
    def cloudformation_name_type():  # type: ignore[no-untyped-def]
        return ""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        backend = _sfn(account_id, region_name)
        machine = backend.describe_state_machine(p["StateMachineArn"])
        newest = max(machine.versions.values(), key=lambda v: v.creation_date, default=None)
        if newest is not None and newest.revision_id == machine.revision_id:
            raise ValueError(f"StateMachineAlreadyExists: {newest.arn} has the current revision of {machine.arn}")
        version = backend.publish_state_machine_version(
            machine.arn, revision_id=p.get("StateMachineRevisionId"), description=p.get("Description")
        )
        return cls(version.arn, cloudformation_json, account_id, region_name)

    @staticmethod
    def replaces(old, new):  # type: ignore[no-untyped-def]
        return True

    @staticmethod
    def remove(backend, arn):  # type: ignore[no-untyped-def]
        backend.delete_state_machine_version(arn)  # a deleted version is no error


class _Alias(_Published, CloudFormationModel):
    """AWS::StepFunctions::StateMachineAlias."""

    __module__ = "moto.stepfunctions.models"

    @staticmethod
    def cloudformation_type():  # type: ignore[no-untyped-def]
        return "AWS::StepFunctions::StateMachineAlias"

    @staticmethod
    def cloudformation_name_type():  # type: ignore[no-untyped-def]
        return "Name"

    @staticmethod
    def routing(p, current=None):  # type: ignore[no-untyped-def]
        if ("RoutingConfiguration" in p) == ("DeploymentPreference" in p):
            raise ValidationError(message="give one of RoutingConfiguration and DeploymentPreference")
        if "RoutingConfiguration" in p:
            return _api_keys(p["RoutingConfiguration"])
        preference = p["DeploymentPreference"]
        target = [{"stateMachineVersionArn": preference["StateMachineVersionArn"], "weight": 100}]
        kind = preference["Type"]
        if kind != "ALL_AT_ONCE" and not ("Interval" in preference and "Percentage" in preference):
            raise ValidationError(message=f"Deployments of type '{kind}' require an interval and percentage")
        if current is not None and kind != "ALL_AT_ONCE" and current != target:
            raise ValidationError(message=f"the emulator does not shift traffic gradually ({kind}): use ALL_AT_ONCE")
        return target

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        routing = cls.routing(p)
        backend = _sfn(account_id, region_name)
        name = p.get("Name", resource_name)
        machine = backend.describe_state_machine(routing[0]["stateMachineVersionArn"].rpartition(":")[0])
        if name in machine.aliases:
            raise ValueError(f"StateMachineAliasAlreadyExists: {machine.arn}:{name}")
        alias = backend.create_state_machine_alias(name, routing, p.get("Description"))
        return cls(alias.arn, cloudformation_json, account_id, region_name)

    @staticmethod
    def replaces(old, new):  # type: ignore[no-untyped-def]
        return old.get("Name") != new.get("Name")

    @classmethod
    def update(cls, original, cloudformation_json):  # type: ignore[no-untyped-def]
        p = cloudformation_json["Properties"]
        backend = _sfn(*original.where)
        current = backend.describe_state_machine_alias(original.arn).routing_configuration
        backend.update_state_machine_alias(original.arn, p.get("Description"), cls.routing(p, current))
        original.properties = copy.deepcopy(p)
        return original

    @staticmethod
    def remove(backend, arn):  # type: ignore[no-untyped-def]
        backend.delete_state_machine_alias(arn)  # a deleted alias is no error


_update_resources = ResourceMap.update


def _update_resources_and_their_dependents(self, template, parameters=None):  # type: ignore[no-untyped-def]
    _replaced.resources = []
    try:
        _update_resources(self, template, parameters)
        for kind in (_Version, _Alias):  # a version reads its machine, an alias its versions
            for logical_id, resource in list(self._parsed_resources.items()):
                resource_json = self._resource_json_map.get(logical_id)
                if type(resource) is kind and resource_json is not None:
                    if clean_json(resource_json.get("Properties", {}), self) != resource.properties:
                        self._parsed_resources[logical_id] = parse_and_update_resource(
                            logical_id, resource_json, self, self._account_id, self._region_name
                        )
        for old in _replaced.resources:
            try:
                old.delete(*old.where)
            except Exception:  # noqa: BLE001  (as CloudFormation, a failed clean-up fails no update)
                pass
    finally:
        _replaced.resources = []


ResourceMap.update = _update_resources_and_their_dependents
