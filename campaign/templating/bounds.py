"""Size bounds checked *before* a template operation allocates.

A wall-clock deadline cannot interrupt one C-level operation: squaring a
million-digit integer or joining ten thousand copies of a 10 kB separator runs to the
end (or to the memory limit) before the next check. So every operation whose result
can be much larger than its operands is measured first, from the operands:

* ``*`` and ``**`` on integers: the result's bits (at most :data:`MAX_INT_BITS`);
  ``*`` on strings and lists: length and text size of the repetition;
* ``%`` formatting: widths, and the size of the arguments;
* ``+`` and ``~``: their results (at most the sum of their operands, so a doubling
  chain stops at the first step past the limit);
* filters and string methods that build text or lists (``join``, ``replace``,
  ``indent``, ``wordwrap``, ``format``, ``center``, ``tojson``, ``batch``, ``slice``,
  ``str.join``/``replace``/``expandtabs``/``translate``...): a prediction of the
  result's size from their arguments;
* every ``{{ value }}`` (the environment's ``finalize``) and every buffer a macro or
  block builds (:class:`BoundedBuffer`).

The limit for text is the message's ``max_output_bytes`` (characters here), so an
operation that could not fit in a message is refused before it runs. Pure.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from campaign.templating.budget import (
    DEFAULT_MAX_LOOP_ITERATIONS,
    DEFAULT_MAX_OUTPUT_BYTES,
    RenderLimitExceeded,
    active_budget,
)

# Widths beyond this in padding filters/methods and %-formats are refused: no message
# needs them and they are the cheapest way to allocate gigabytes from one expression.
MAX_PAD_WIDTH = 1_000
# Longest string or list a template may build with ``*``.
MAX_REPEAT_RESULT = 10_000
# Largest integer a template may compute (about 1,233 decimal digits): far beyond any
# amount or count, and small enough that every operation on it takes microseconds.
MAX_INT_BITS = 4_096
_PERCENT_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[a-zA-Z%]")
PAD_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_SCALAR_SIZE = 24
_LOG10_2 = 0.30103
# A predictor: (predicted result size, positional arguments, keyword arguments to call with).
Prediction = tuple[int, tuple[Any, ...], dict[str, Any]]


def text_limit() -> int:
    """The largest text (characters) one value may have in the running message."""
    budget = active_budget()
    return budget.max_output_bytes if budget is not None else DEFAULT_MAX_OUTPUT_BYTES


def _loop_limit() -> int:
    budget = active_budget()
    return budget.max_loop_iterations if budget is not None else DEFAULT_MAX_LOOP_ITERATIONS


def text_size(value: Any, limit: int) -> int:
    """About ``len(str(value))`` without building it; stops counting once over ``limit``.

    Strings count their length, integers their decimal digits, containers their items
    (plus separators), walked without recursion; other objects a small constant.
    """
    total = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += int(item.bit_length() * _LOG10_2) + 2
        elif isinstance(item, Mapping):
            total += 2
            for key, entry in item.items():
                stack.append(key)
                stack.append(entry)
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2
            stack.extend(item)
        else:
            total += _SCALAR_SIZE
        if total > limit:
            return total
    return total


def check_size(value: Any, what: str = "a value") -> Any:
    """``value`` unchanged if its text fits in a message, else refused."""
    if type(value) is str and len(value) <= DEFAULT_MAX_OUTPUT_BYTES // 8:
        # Small text costs nothing to build, whatever the budget: skip reading it. (The
        # output stream still holds the message to its exact max_output_bytes.)
        return value
    if isinstance(value, str):
        size = len(value)
    elif isinstance(value, int | float) or value is None:
        return value
    else:
        size = text_size(value, text_limit())
    limit = text_limit()
    if size > limit:
        raise RenderLimitExceeded(
            f"{what} of about {size} characters is over the {limit} limit (max_output_bytes)"
        )
    return value


def _refuse_text(predicted: int, what: str) -> None:
    limit = text_limit()
    if predicted > limit:
        raise RenderLimitExceeded(
            f"{what} would build about {predicted} characters, over the {limit} limit"
            " (max_output_bytes)"
        )


def _check_bits(bits: int, what: str) -> None:
    if bits > MAX_INT_BITS:
        raise RenderLimitExceeded(
            f"{what} would make a number of about {int(bits * _LOG10_2)} digits"
            f" (the limit is {int(MAX_INT_BITS * _LOG10_2)})"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- operators ---------------------------------------------------------------------


def checked_width(width: Any) -> int:
    """``width`` if it is an integer within :data:`MAX_PAD_WIDTH`, else refused."""
    if not isinstance(width, int) or abs(width) > MAX_PAD_WIDTH:
        raise RenderLimitExceeded(f"width {width!r} is over the {MAX_PAD_WIDTH} limit")
    return width


def check_percent_format(fmt: str) -> None:
    """Refuse ``%``-format widths or precisions over :data:`MAX_PAD_WIDTH` (or ``*``)."""
    for match in _PERCENT_WIDTH.finditer(fmt):
        for group in match.groups():
            if group == "*" or (group and int(group) > MAX_PAD_WIDTH):
                raise RenderLimitExceeded("format width or precision is over the limit")


def multiply(left: Any, right: Any) -> Any:
    """``left * right`` once the result is known to be small enough."""
    if _is_int(left) and _is_int(right):
        _check_bits(left.bit_length() + right.bit_length(), "multiplying")
        return left * right
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(times, int):
            count = max(times, 0)
            if len(seq) * count > MAX_REPEAT_RESULT:
                raise RenderLimitExceeded(
                    f"repeating makes more than {MAX_REPEAT_RESULT} items or characters"
                )
            if not isinstance(seq, str) and count:
                _refuse_text(text_size(seq, text_limit() // count + 1) * count, "repeating")
    return operator.mul(left, right)


def power(left: Any, right: Any) -> Any:
    """``left ** right`` within exponent, base and result-size limits."""
    if isinstance(right, int | float) and abs(right) > 100:
        raise RenderLimitExceeded("exponent over 100 refused")
    if isinstance(left, int | float) and abs(left) > 10**6:
        raise RenderLimitExceeded("base over 10**6 refused")
    if _is_int(left) and _is_int(right) and right > 0:
        _check_bits(left.bit_length() * right, "raising to a power")
    return operator.pow(left, right)


def modulo(left: Any, right: Any) -> Any:
    """``left % right``; for text formatting, widths and argument sizes are checked."""
    if isinstance(left, str):
        check_percent_format(left)
        _refuse_text(len(left) + text_size(right, text_limit()), "formatting with %")
    return operator.mod(left, right)


def add(left: Any, right: Any) -> Any:
    """``left + right``; text and list results over the message limit are refused."""
    result = operator.add(left, right)
    if isinstance(result, str | list | tuple):
        check_size(result, "adding")
    return result


def concat_operand(value: Any) -> Any:
    """An operand of ``a ~ b``, unchanged if its text fits in a message."""
    if type(value) is str and len(value) <= DEFAULT_MAX_OUTPUT_BYTES // 8:
        return value
    return check_size(value, "a ~ operand")


def bounded_concat(value: Any) -> Any:
    """The result of ``a ~ b ~ ...`` (each operand was checked by :func:`check_size`)."""
    return check_size(value, "joining with ~")


class BoundedBuffer(list):  # type: ignore[type-arg]
    """The list a macro or a ``{% set %}``/``{% filter %}``/``{% call %}`` block writes
    its output into; every piece is charged to the message's built-text budget."""

    __slots__ = ()

    def append(self, item: Any) -> None:
        budget = active_budget()
        if budget is not None:
            budget.count_built(len(item) if isinstance(item, str) else _SCALAR_SIZE)
        list.append(self, item)

    def extend(self, items: Iterable[Any]) -> None:
        items = tuple(items)
        budget = active_budget()
        if budget is not None:
            budget.count_built(
                sum(len(item) if isinstance(item, str) else _SCALAR_SIZE for item in items)
            )
        list.extend(self, items)


def finalize(value: Any) -> Any:
    """Every ``{{ value }}`` before it becomes text: refused when it could not fit."""
    if type(value) is str and len(value) <= DEFAULT_MAX_OUTPUT_BYTES // 8:
        return value  # the common case, without reading the budget
    return check_size(value, "a printed value")


# -- filters -----------------------------------------------------------------------


def _value_offset(original: Callable[..., Any]) -> int:
    # Filters marked pass_context / pass_eval_context / pass_environment get that first.
    return 1 if getattr(original, "jinja_pass_arg", None) is not None else 0


def _filter(
    original: Callable[..., Any],
    predict: Callable[..., Prediction],
    what: str,
) -> Callable[..., Any]:
    """Wrap filter ``original``: ``predict(value, *args, **kwargs)`` returns the
    predicted result size and the (possibly materialized) arguments to call with."""
    offset = _value_offset(original)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        head, rest = args[:offset], args[offset:]
        size, rest, kwargs = predict(*rest, **kwargs)
        _refuse_text(size, what)
        return check_size(original(*head, *rest, **kwargs), what)

    return wrapper


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _predict_join(value: Any, *args: Any, **kwargs: Any) -> Prediction:
    items = list(value) if not isinstance(value, list | tuple | str) else value
    if len(items) > _loop_limit():
        raise RenderLimitExceeded(f"join of {len(items)} items is over the {_loop_limit()} limit")
    separator = _arg(args, kwargs, 0, "d", "")
    limit = text_limit()
    size = max(len(items) - 1, 0) * len(str(separator)) if isinstance(separator, str) else 0
    if size <= limit:
        size += text_size(items, limit)
    return size, (items, *args), kwargs


def _predict_replace(value: Any, *args: Any, **kwargs: Any) -> Prediction:
    return _replace_size(value, args, kwargs), (value, *args), kwargs


def _replace_size(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    text = value if isinstance(value, str) else str(check_size(value))
    old = str(_arg(args, kwargs, 0, "old", ""))
    new = str(_arg(args, kwargs, 1, "new", ""))
    count = _arg(args, kwargs, 2, "count", None)
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(len(new) - len(old), 0)


def _predict_indent(value: Any, *args: Any, **kwargs: Any) -> Prediction:
    width = _arg(args, kwargs, 0, "width", 4)
    text = str(check_size(value))
    step = len(width) if isinstance(width, str) else checked_width(width)
    return len(text) + (text.count("\n") + 1) * step, (value, *args), kwargs


def _predict_wordwrap(value: Any, *args: Any, **kwargs: Any) -> Prediction:
    text = str(check_size(value))
    width = _arg(args, kwargs, 0, "width", 79)
    wrap = _arg(args, kwargs, 2, "wrapstring", None) or "\n"
    if not isinstance(width, int) or width < 1:
        raise RenderLimitExceeded(f"wordwrap width {width!r} must be a positive number")
    lines = len(text) // width + text.count("\n") + 1
    return len(text) + lines * len(str(wrap)), (value, *args), kwargs


def _predict_format(value: Any, *args: Any, **kwargs: Any) -> Prediction:
    check_percent_format(str(value))
    limit = text_limit()
    return len(str(value)) + text_size((args, kwargs), limit), (value, *args), kwargs


def _predict_tojson(value: Any, *args: Any, **kwargs: Any) -> Prediction:
    indent = _arg(args, kwargs, 0, "indent", None)
    if indent is not None and (not isinstance(indent, int) or not 0 <= indent <= 16):
        raise RenderLimitExceeded(f"tojson indent {indent!r} is over the 16 limit")
    size = text_size(value, text_limit())
    return size * (2 + (indent or 0)), (value, *args), kwargs


def _predict_count_argument(
    name: str,
) -> Callable[..., Prediction]:
    def predict(value: Any, *args: Any, **kwargs: Any) -> Prediction:
        count = _arg(args, kwargs, 0, name, 1)
        if not isinstance(count, int) or not 0 < count <= _loop_limit():
            raise RenderLimitExceeded(f"{name} {count!r} is over the {_loop_limit()} limit")
        return 0, (value, *args), kwargs

    return predict


def _predict_size_of_value(value: Any, *args: Any, **kwargs: Any) -> Prediction:
    return text_size(value, text_limit()), (value, *args), kwargs


def _predict_nothing(value: Any, *args: Any, **kwargs: Any) -> Prediction:
    return 0, (value, *args), kwargs


_WIDTH_FILTERS = {"center": ("width", 0)}
_PREDICTORS: dict[str, Callable[..., Prediction]] = {
    "join": _predict_join,
    "replace": _predict_replace,
    "indent": _predict_indent,
    "wordwrap": _predict_wordwrap,
    "format": _predict_format,
    "tojson": _predict_tojson,
    "batch": _predict_count_argument("linecount"),
    "slice": _predict_count_argument("slices"),
    "pprint": _predict_size_of_value,
    "string": _predict_size_of_value,
    "list": _predict_size_of_value,
    "urlize": _predict_nothing,
    "xmlattr": _predict_nothing,
    "sum": _predict_nothing,
    "truncate": _predict_nothing,
}


def _bounded_width(original: Callable[..., Any], name: str, index: int) -> Callable[..., Any]:
    offset = _value_offset(original)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        rest = args[offset:]
        if len(rest) > index + 1:
            checked_width(rest[index + 1])
        if name in kwargs:
            checked_width(kwargs[name])
        return original(*args, **kwargs)

    return wrapper


def bounded_filters(filters: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Replacements for the built-in filters that build text or lists (see the module)."""
    out: dict[str, Callable[..., Any]] = {}
    for name, (width_name, index) in _WIDTH_FILTERS.items():
        out[name] = _bounded_width(filters[name], width_name, index)
    for name, predict in _PREDICTORS.items():
        if name in filters:
            out[name] = _filter(filters[name], predict, f"the {name} filter")
    return out


# -- method calls ------------------------------------------------------------------


def check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a call of a text method whose result could not fit in a message.

    Returns the arguments to call with (``str.join`` gets its items as a list, so
    they are counted without consuming a generator).
    """
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if not isinstance(owner, str):
        return args
    if name in PAD_METHODS:
        for arg in (*args, *kwargs.values()):
            if isinstance(arg, int):
                checked_width(arg)
    if name == "join" and args:
        items = list(args[0])
        if len(items) > _loop_limit():
            raise RenderLimitExceeded(
                f"join of {len(items)} items is over the {_loop_limit()} limit"
            )
        size = max(len(items) - 1, 0) * len(owner)
        if size <= text_limit():
            size += text_size(items, text_limit())
        _refuse_text(size, "str.join")
        return (items, *args[1:])
    if name == "replace":
        _refuse_text(_replace_size(owner, args, kwargs), "str.replace")
    elif name == "expandtabs":
        tab = _arg(args, kwargs, 0, "tabsize", 8)
        _refuse_text(len(owner) + owner.count("\t") * checked_width(tab), "str.expandtabs")
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max(
            (len(v) for v in args[0].values() if isinstance(v, str)), default=1
        )
        _refuse_text(len(owner) * max(longest, 1), "str.translate")
    return args
