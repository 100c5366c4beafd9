"""An intrinsic-function fix for moto 5.2.5's Step Functions interpreter: `States.Format` with
escaped braces.

AWS: in an intrinsic function's string literal the characters `'`, `{`, `}` and `\\` are
reserved and stand for themselves when escaped with a backslash ("Reserved characters in
intrinsic functions", https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html);
`States.Format` replaces each (unescaped) `{}` of its first argument with the value of the
positionally-corresponding argument (same page, "States.Format"). So
`States.Format('\\{"steps":{}\\}', States.JsonToString($.x))` is `{"steps":` + the JSON text of
`$.x` + `}`: how a parallel group's `ResultSelector` puts the merged `steps` back into one
document.

moto: the string literal keeps its escapes (`\\{` stays two characters), and `Format` hands the
template to Python's `str.format`, which reads `{"steps":{}\\}` as a replacement field named
`"steps"` and fails the state with `KeyError('"steps"')` (States.Runtime). Fixed: the template
is read as AWS reads it: `\\` followed by a reserved character is that character, `{}` takes the
next argument, any other character is itself (a lone brace included). The arguments' string
forms are moto's own.
"""

from moto.stepfunctions.parser.asl.component.intrinsic.function.statesfunction.generic.string_format import (
    StringFormat,
)

_RESERVED = "'{}\\"


def _format(template, values):  # type: ignore[no-untyped-def]
    out = []
    values = iter(values)
    i = 0
    while i < len(template):
        c = template[i]
        if c == "\\" and i + 1 < len(template) and template[i + 1] in _RESERVED:
            out.append(template[i + 1])
            i += 2
        elif template.startswith("{}", i):
            out.append(next(values, ""))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _eval_body(self, env):  # type: ignore[no-untyped-def]
    self.argument_list.eval(env=env)
    args = env.stack.pop()
    values = map(self._to_str_repr, args[1:])
    env.stack.append(_format(args[0], values))


StringFormat._eval_body = _eval_body

# And the expression itself: moto hands the intrinsic parser the field's raw JSON text, escapes
# and all (`"\\{\\"steps\\"..."` reached `States.Format` as `\\\\{\\"steps\\"...`). AWS reads the
# state machine as JSON first: the expression is the field's string VALUE, in which the
# intrinsic's own escapes (above) are then read. Decoded here.
import json  # noqa: E402

from moto.stepfunctions.parser.asl.parse.intrinsic.intrinsic_parser import (  # noqa: E402
    IntrinsicParser,
)
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor  # noqa: E402
from moto.stepfunctions.parser.asl.component.common.string.string_expression import (  # noqa: E402
    StringIntrinsicFunction,
)


def _visit_string_intrinsic_function(self, ctx):  # type: ignore[no-untyped-def]
    derivation = json.loads(ctx.STRINGINTRINSICFUNC().getText())
    function, _ = IntrinsicParser.parse(derivation)
    return StringIntrinsicFunction(intrinsic_function_derivation=derivation, function=function)


Preprocessor.visitString_intrinsic_function = _visit_string_intrinsic_function
