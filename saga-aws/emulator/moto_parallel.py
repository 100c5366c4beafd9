"""A `Parallel` fix for moto 5.2.5's Step Functions interpreter: a branch failing with a
`States.*` error (a Task's `States.Timeout`, above all) fails the `Parallel` with that error.

AWS: "If any branch fails, because of an unhandled error or by transitioning to a Fail state,
the entire Parallel state is considered to have failed and all its branches are stopped. If the
error is not handled by the Parallel state itself, Step Functions stops the execution with an
error." (https://docs.aws.amazon.com/step-functions/latest/dg/state-parallel.html), and its
`Catch` is matched against the branch's error as for any state ("Handling errors in Step
Functions workflows", https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html):
a branch whose Task timed out fails the `Parallel` with `States.Timeout`, which its
`Catch` on `States.ALL` takes.

moto: `BranchesDecl` re-raises the branch's error as a `CustomErrorName`, which refuses a name
with the `States.` prefix (`ValueError`), so the `Parallel` fails with `States.Runtime` instead
and the execution ends without its `Catch`. Fixed: a `States.*` name moto knows is re-raised as
that `StatesErrorName`; every other name as before.
"""

from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
    CustomErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
    StatesErrorName,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl


def _branch_error_name(error_name=None):  # type: ignore[no-untyped-def]
    if error_name is not None and error_name.startswith("States."):
        try:
            return StatesErrorName.from_name(error_name)
        except Exception:  # a `States.` name moto does not know: as before
            pass
    return CustomErrorName(error_name=error_name)


branches_decl.CustomErrorName = _branch_error_name
