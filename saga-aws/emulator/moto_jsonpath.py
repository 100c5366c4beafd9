"""A JSONPath fix for moto 5.2.5's Step Functions interpreter.

AWS: a reference path selects one node, and its value is that node's value. "A reference path
is a path whose syntax is limited in such a way that it can identify only a single node in a
JSON structure" (https://docs.aws.amazon.com/step-functions/latest/dg/amazon-states-language-paths.html,
"Reference Paths"); `$[1].steps` is the object under `steps` of the second element, as
`States.JsonMerge($[0].steps, $[1].steps, false)` over a Parallel state's output needs
(https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html#asl-intrsc-func-json-manipulate,
which also allows intrinsic functions to nest).

moto: `extract_json` (moto/stepfunctions/parser/asl/utils/json_path.py) wraps a single match in a
list whenever the matched node's parent is an array element (the condition added for
getmoto/moto#7825, a filter `[?(...)]` query, whose result AWS gives as a list). That also catches
definite paths: `$[1].steps` came back as `[{...}]`, so every `JsonMerge` of a Parallel's branch
outputs failed with States.Runtime. Fixed: the #7825 wrapping is kept for indefinite paths only
(filter, wildcard, slice, recursive descent). The function's code is swapped in place, as about
ten modules import it by name; the new code runs with json_path's own globals.
"""

import re

from moto.stepfunctions.parser.asl.utils import json_path

json_path._INDEFINITE_PATH = re.compile(r"\[\s*(?:\?|\*|-?\d*\s*:)|\.\.|\.\*")


def extract_json(path, data):  # type: ignore[no-untyped-def]  # moto's body, one condition narrowed
    input_expr = parse(path)  # noqa: F821 (json_path's globals)

    matches = input_expr.find(data)
    if not matches:
        if _contains_slice_or_wildcard_array(path):  # noqa: F821
            return []
        raise NoSuchJsonPathError(json_path=path, data=data)  # noqa: F821

    if (
        len(matches) > 1
        or isinstance(matches[0].path, Index)  # noqa: F821
        or (
            matches[0].context
            and isinstance(matches[0].context.path, Index)  # noqa: F821
            and _INDEFINITE_PATH.search(path)  # noqa: F821 (the fix: not for `$[1].steps`)
        )
    ):
        value = [match.value for match in matches]
        if _is_singleton_array_access(path=path) and len(value) == 1:  # noqa: F821
            value = value[0]
    else:
        value = matches[0].value

    return value


json_path.extract_json.__code__ = extract_json.__code__
