"""Step Functions state machine versions and aliases in moto 5.2.5 as AWS has them (imported by
moto_server.py before the server starts, after Step Functions execution is switched on).

moto stored a version on `publish=true` and an alias, and little else: PublishStateMachineVersion,
ListStateMachineVersions and DeleteStateMachineVersion had no handler (HTTP 500), StartExecution
on a version ARN failed (HTTP 500) and on an alias ARN answered StateMachineDoesNotExist, and
nothing kept the revision a version was made from. AWS (API reference:
https://docs.aws.amazon.com/step-functions/latest/apireference/, one page per action, cited
below by name; where a page is silent, the responses LocalStack recorded against AWS:
https://github.com/localstack/localstack/blob/main/tests/aws/services/stepfunctions/v2/test_sfn_api_versioning.snapshot.json
and test_sfn_api_aliasing.snapshot.json next to it):

1. Revisions. A state machine's first revision has no id ("The first revision ID when you create
   the state machine is null", DescribeStateMachineForExecution); UpdateStateMachine changing the
   definition, role, logging, tracing or encryption makes a new revision with a new id, answered
   as `revisionId` (UpdateStateMachine), and an update changing nothing makes none (recorded).
2. PublishStateMachineVersion publishes the current revision as version N+1 (numbers are never
   reused: recorded), and "is an idempotent API. It doesn't create a duplicate state machine
   version if it already exists for the current revision"; `revisionId` (or INITIAL for the
   first revision) must be the current one, else ConflictException. UpdateStateMachine and
   CreateStateMachine with `publish` do the same. DescribeStateMachine on a version ARN describes
   the version: its definition, its description, its revisionId (DescribeStateMachine).
   ListStateMachineVersions lists "in descending order of the version creation time";
   DeleteStateMachineVersion refuses a version an alias routes to (ConflictException) and does
   not stop its executions.
3. Aliases route StartExecution to one or two versions of the same machine by weight
   (CreateStateMachineAlias, UpdateStateMachineAlias, RoutingConfigurationListItem); creating an
   existing alias again with the same routing is idempotent, with another routing a
   ConflictException. ListStateMachineAliases on a version ARN lists the aliases routing to it.
4. StartExecution on a version ARN runs that version, on an alias ARN the version the weights
   pick, and "associates the execution with that alias and the version"
   (https://docs.aws.amazon.com/step-functions/latest/dg/execution-alias-version-associate.html);
   DescribeExecution and ListExecutions report stateMachineVersionArn / stateMachineAliasArn, as
   does the history's ExecutionStarted event (ExecutionStartedEventDetails), and
   DescribeStateMachineForExecution describes what the execution runs (moto described the
   machine as it is now, even for an execution started before an update).
5. Execution ARNs and names. An execution started through a version or an alias has the same ARN
   as any other, `arn:aws:states:REGION:ACCOUNT:execution:MACHINE:NAME` (recorded; the API pages
   give no format), and its name "must be unique for your AWS account, Region, and state machine
   for 90 days" (StartExecution), so one name is one execution across the machine, its versions
   and aliases: the same name and input while it runs is idempotent on a STANDARD machine (the
   existing execution is answered, whichever ARN started it: the docs say no more), otherwise
   ExecutionAlreadyExists. A missing name becomes a UUID (StartExecution, `name`).
6. ListExecutions takes the machine ARN (every execution, however started: recorded), a version
   ARN (those started with it) or an alias ARN (those started through it) (ListExecutions).

Sections 1 to 3 are here, 4 to 6 in moto_stepfunctions_executions.py (imported below); the
CloudFormation resources AWS::StepFunctions::StateMachineVersion and ::StateMachineAlias are in
moto_cloudformation.py.
"""

import json
import re
import uuid

from moto.core.exceptions import AWSError
from moto.core.responses import ActionResult, EmptyResult
from moto.stepfunctions import models as sfn_models
from moto.stepfunctions.exceptions import InvalidArn, ResourceNotFound, StateMachineDoesNotExist, ValidationException
from moto.stepfunctions.parser.models import StepFunctionsParserBackend as Backend
from moto.stepfunctions.responses import StepFunctionResponse as Response
from moto.stepfunctions.utils import PAGINATION_MODEL
from moto.utilities.paginator import paginate

# Executions of versions and aliases (sections 4 to 6), and what both parts share.
from moto_stepfunctions_executions import _lock, _machine, _resolve


class ConflictException(AWSError):
    TYPE = "ConflictException"
    STATUS = 409


# 1. Revisions: the first has no id; a change of configuration makes a new one.
sfn_models.StateMachineInstance.revision_id = None


def _configuration(sm):  # type: ignore[no-untyped-def]
    try:
        definition = json.loads(sm.definition)
    except (TypeError, ValueError):
        definition = sm.definition
    return json.dumps(
        [definition, sm.roleArn, sm.loggingConfiguration, sm.tracingConfiguration, sm.encryptionConfiguration],
        sort_keys=True,
    )


_update_machine = Backend.update_state_machine


def _update_state_machine(self, arn, definition=None, role_arn=None, logging_configuration=None,  # type: ignore[no-untyped-def]
                          tracing_configuration=None, encryption_configuration=None, publish=None,
                          version_description=None):
    sm = _machine(self, arn)  # a version is not updated: it is immutable
    with _lock:
        before = _configuration(sm)
        _update_machine(self, arn, definition=definition, role_arn=role_arn,
                        logging_configuration=logging_configuration,
                        tracing_configuration=tracing_configuration,
                        encryption_configuration=encryption_configuration)
        if _configuration(sm) != before:
            sm.revision_id = str(uuid.uuid4())
        if publish:
            sm.published = _publish(sm, version_description)
    return sm


Backend.update_state_machine = _update_state_machine


# 2. Versions.
def _publish(sm, description):  # type: ignore[no-untyped-def]
    """The version of `sm`'s current revision, published now if it has none."""
    with _lock:
        for version in sm.versions.values():
            if version.revision_id == sm.revision_id:
                return version
        number = sm.latest_version_number + 1
        version = sfn_models.StateMachineVersion(source=sm, version=number, description=description)
        version.revision_id = sm.revision_id
        sm.versions[number] = version
        sm.latest_version, sm.latest_version_number = version, number
        return version


sfn_models.StateMachine.publish = lambda self, description: _publish(self, description)


def _publish_state_machine_version(self, state_machine_arn, revision_id=None, description=None):  # type: ignore[no-untyped-def]
    sm = _machine(self, state_machine_arn)
    with _lock:
        current = sm.revision_id or "INITIAL"
        if revision_id is not None and revision_id != current:
            raise ConflictException(
                f"Failed to publish the State Machine version for revision {revision_id}. "
                f"The current State Machine revision is {current}."
            )
        return _publish(sm, description)


PAGINATION_MODEL["list_state_machine_versions"] = dict(PAGINATION_MODEL["list_state_machines"])


@paginate(pagination_model=PAGINATION_MODEL)
def list_state_machine_versions(self, state_machine_arn):  # type: ignore[no-untyped-def]
    versions = _machine(self, state_machine_arn).versions.values()
    return sorted(versions, key=lambda v: (v.creation_date, v.version), reverse=True)


def _routes_to(alias, version_arn):  # type: ignore[no-untyped-def]
    return any(r["stateMachineVersionArn"] == version_arn for r in alias.routing_configuration)


def _delete_state_machine_version(self, version_arn):  # type: ignore[no-untyped-def]
    self._validate_machine_arn(version_arn)
    base, _, number = version_arn.rpartition(":")
    if not number.isdigit():
        raise InvalidArn(f"Invalid Arn: '{version_arn}'")
    with _lock:
        sm = next((m for m in self.state_machines if m.arn == base), None)
        if sm is None or int(number) not in sm.versions:
            return  # AWS answers a deleted version with success (recorded)
        aliases = [a.name for a in sm.aliases.values() if _routes_to(a, version_arn)]
        if aliases:
            raise ConflictException(
                "Version to be deleted must not be referenced by an alias. "
                f"Current list of aliases referencing this version: [{', '.join(aliases)}]"
            )
        del sm.versions[int(number)]
        sm.latest_version = sm.versions[max(sm.versions)] if sm.versions else None


Backend.publish_state_machine_version = _publish_state_machine_version
Backend.list_state_machine_versions = list_state_machine_versions
Backend.delete_state_machine_version = _delete_state_machine_version


# 3. Aliases.
def _validate_routing(routing):  # type: ignore[no-untyped-def]
    """CreateStateMachineAlias/UpdateStateMachineAlias's checks, in AWS's words (recorded)."""
    arns = [r["stateMachineVersionArn"] for r in routing]
    if not 1 <= len(routing) <= 2:
        raise ValidationException("Routing configuration must contain 1 or 2 state machine versions.")
    if len(set(arns)) < len(arns):
        raise ValidationException(
            f"Routing configuration must contain distinct state machine version ARNs. Received: [{', '.join(arns)}]"
        )
    weights = [r["weight"] for r in routing]
    if sum(weights) != 100:
        raise ValidationException(f"Sum of routing configuration weights must equal 100. Received: {json.dumps(weights)}")
    if not all(arn.rpartition(":")[2].isdigit() for arn in arns):
        raise ValidationException(f"Routing configuration must contain state machine version ARNs. Received: [{', '.join(arns)}]")
    if len({arn.rpartition(":")[0] for arn in arns}) > 1:
        raise ValidationException("Both stateMachineVersionArn values must belong to the same state machine.")


Response._validate_routing_configuration = lambda self, routing: _validate_routing(routing)


def _routed_machine(backend, routing):  # type: ignore[no-untyped-def]
    """The machine whose existing versions `routing` names."""
    sm = None
    for route in routing:
        arn = route["stateMachineVersionArn"]
        base, _, number = arn.rpartition(":")
        sm = next((m for m in backend.state_machines if m.arn == base), None)
        if sm is None or int(number) not in sm.versions:
            raise ResourceNotFound(arn)
    return sm


def _same_routing(a, b):  # type: ignore[no-untyped-def]
    return sorted((r["stateMachineVersionArn"], r["weight"]) for r in a) == sorted(
        (r["stateMachineVersionArn"], r["weight"]) for r in b
    )


def _create_state_machine_alias(self, name, routing_configuration, description):  # type: ignore[no-untyped-def]
    _validate_routing(routing_configuration)  # CloudFormation calls this, not the handler
    if not re.fullmatch(r"(?=.*[a-zA-Z_\-.])[a-zA-Z0-9_\-.]{1,80}", name or ""):
        raise ValidationException(
            f"1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: ^(?=.*[a-zA-Z_\\-\\.])[a-zA-Z0-9_\\-\\.]+$"
        )
    with _lock:
        sm = _routed_machine(self, routing_configuration)
        existing = sm.aliases.get(name)
        if existing is not None:
            if _same_routing(existing.routing_configuration, routing_configuration) and (
                existing.description == description
            ):
                return existing
            raise ConflictException(
                "Failed to create alias because an alias with the same name and a different "
                "routing configuration already exists."
            )
        alias = sfn_models.StateMachineAlias(name, sm.arn, routing_configuration, description)
        sm.aliases[name] = alias
        return alias


_update_alias = Backend.update_state_machine_alias


def _update_state_machine_alias(self, arn, description, routing_configuration):  # type: ignore[no-untyped-def]
    if routing_configuration:
        _validate_routing(routing_configuration)
    with _lock:
        alias = self.describe_state_machine_alias(arn)
        if routing_configuration and _routed_machine(self, routing_configuration).arn != alias.statemachine_arn:
            raise ValidationException("Routing configuration must contain versions of the alias's state machine.")
        return _update_alias(self, arn, description, routing_configuration)


_delete_alias = Backend.delete_state_machine_alias


def _delete_state_machine_alias(self, arn):  # type: ignore[no-untyped-def]
    try:
        with _lock:
            _delete_alias(self, arn)
    except (ResourceNotFound, StateMachineDoesNotExist):
        pass  # AWS answers an alias that does not exist with success (recorded)


@paginate(pagination_model=PAGINATION_MODEL)
def list_state_machine_aliases(self, arn):  # type: ignore[no-untyped-def]
    sm, version, alias = _resolve(self, arn)
    aliases = [a for a in sm.aliases.values() if version is None or _routes_to(a, version.arn)]
    # The page says "most recently created aliases listed first"; AWS answered them oldest
    # first (recorded, test_base_lifecycle_create_delete_list), as moto does: kept.
    return sorted(aliases, key=lambda a: a.creation_date)


Backend.create_state_machine_alias = _create_state_machine_alias
Backend.update_state_machine_alias = _update_state_machine_alias
Backend.delete_state_machine_alias = _delete_state_machine_alias
Backend.list_state_machine_aliases = list_state_machine_aliases


# The API's handlers (moto had none for the three version actions).
def _publish_state_machine_version_handler(self):  # type: ignore[no-untyped-def]
    version = self.stepfunction_backend.publish_state_machine_version(
        self._get_param("stateMachineArn"),
        revision_id=self._get_param("revisionId"),
        description=self._get_param("description"),
    )
    return ActionResult({"creationDate": version.creation_date, "stateMachineVersionArn": version.arn})


def _list_state_machine_versions_handler(self):  # type: ignore[no-untyped-def]
    versions, token = self.stepfunction_backend.list_state_machine_versions(
        self._get_param("stateMachineArn"),
        max_results=self._get_int_param("maxResults"),
        next_token=self._get_param("nextToken"),
    )
    items = [{"stateMachineVersionArn": v.arn, "creationDate": v.creation_date} for v in versions]
    return ActionResult({"stateMachineVersions": items, "nextToken": token})


def _delete_state_machine_version_handler(self):  # type: ignore[no-untyped-def]
    self.stepfunction_backend.delete_state_machine_version(self._get_param("stateMachineVersionArn"))
    return EmptyResult()


def _update_state_machine_handler(self):  # type: ignore[no-untyped-def]
    publish = self._get_param("publish")
    description = self._get_param("versionDescription")
    if description and not publish:
        raise ValidationException("Version description can only be set when publish is true")
    sm = self.stepfunction_backend.update_state_machine(
        arn=self._get_param("stateMachineArn"),
        definition=self._get_param("definition"),
        role_arn=self._get_param("roleArn"),
        tracing_configuration=self._get_param("tracingConfiguration"),
        encryption_configuration=self._get_param("encryptionConfiguration"),
        logging_configuration=self._get_param("loggingConfiguration"),
        publish=publish,
        version_description=description,
    )
    response = {"updateDate": sm.update_date}
    if sm.revision_id:
        response["revisionId"] = sm.revision_id
    if publish:
        response["stateMachineVersionArn"] = sm.published.arn
    return ActionResult(response)


_describe_machine = Response._describe_state_machine


def _describe_state_machine_with_revision(self, arn):  # type: ignore[no-untyped-def]
    result = _describe_machine(self, arn)
    revision = self.stepfunction_backend.describe_state_machine(arn).revision_id
    if revision:
        result.result["revisionId"] = revision
    return result


Response.publish_state_machine_version = _publish_state_machine_version_handler
Response.list_state_machine_versions = _list_state_machine_versions_handler
Response.delete_state_machine_version = _delete_state_machine_version_handler
Response.update_state_machine = _update_state_machine_handler
Response._describe_state_machine = _describe_state_machine_with_revision
