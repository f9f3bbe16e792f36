"""Lists of plain rows answered without graphql-core's field-by-field completion.

graphql-core completes every value of a list of objects on its own (resolve info, resolver,
leaf coercion, a path), about 5 µs each; the usage page asks for some 5,000 of them. When a
list's items are an object type and the fields asked of them are all *plain* (a Strawberry
field read off the object: no resolver, no permission classes or other field extensions, no
arguments, a scalar or enum type) or `__typename`, an item's answer is its attributes passed
through their types' `coerce_output_value`, in selection order: what the normal path gives.

A field may also be a list of such rows made by a resolver that declares itself a pure function
of its object and scalar arguments (`metadata=PURE_LIST`): the days of a month, each holding
its models, agents or VMs. Such a resolver is called directly with the arguments graphql-core
coerced, and its rows answered the same way; if it raises or any of its rows cannot be answered,
the outer list takes the normal path, which calls it again and reports the error where it
belongs (hence pure: a second call must give the same answer and change nothing).

Anything else takes the normal path for the whole list, which then raises its own errors at
its own paths: a field that is not plain, a null for a non-null field, a value that does not
coerce (or is an exception or awaitable), an item that is not exactly the type's class, an
abstract item type, `@stream` or `@defer`, and resolve middleware (a schema extension with a
`resolve` hook, which must see every field; ours install none, see `schema.build_schema`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import CoroutineType, GeneratorType
from typing import Any, Final, NamedTuple

from graphql import (
    GraphQLError,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    Undefined,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.execution.values import get_argument_values
from graphql.pyutils import AwaitableOrValue, Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import StrawberryArgument
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

_TYPENAME = "__typename"

# A resolver's promise (`strawberry.field(metadata=PURE_LIST)`): it returns a list of plain
# rows, reads only its object and its scalar arguments, and changes nothing.
_PURE_KEY: Final = "crabglamp.pure_list"
PURE_LIST: Final = {_PURE_KEY: True}


class PlainRows(NamedTuple):
    """How to answer one list's items directly: their class and the fields asked."""

    origin: type
    fields: tuple[PlainField, ...]


class NestedRows(NamedTuple):
    """A field whose value is a pure resolver's list of plain rows."""

    resolve: Callable[..., Any]
    kwargs: dict[str, Any]
    rows: PlainRows


class PlainField(NamedTuple):
    response_name: str
    # None for __typename, whose value is the item type's name.
    python_name: str | None
    coerce: Callable[[Any], Any]
    non_null: bool
    nested: NestedRows | None = None


class _Fallback(Exception):
    """An item the fast path does not answer: the whole list takes the normal path."""


# Types whose values the normal path would not coerce: it raises an exception held as a value,
# and awaits an awaitable. Keyed by the value's type, decided once per type.
_COERCIBLE: dict[type, bool] = {}


def _coercible(kind: type) -> bool:
    known = _COERCIBLE.get(kind)
    if known is None:
        known = not (
            issubclass(kind, (BaseException, CoroutineType, GeneratorType))
            or hasattr(kind, "__await__")
        )
        _COERCIBLE[kind] = known
    return known


def _nested_value(row: Any, nested: NestedRows, non_null: bool) -> list[dict[str, Any]] | None:
    items = nested.resolve(row, **nested.kwargs)  # if it raises, so does the normal path
    if items is None and not non_null:
        return None
    if type(items) not in (list, tuple):
        raise _Fallback
    rows = answer_rows(nested.rows, items)
    if rows is None:
        raise _Fallback
    return rows


def answer_rows(plan: PlainRows, items: Sequence[Any]) -> list[dict[str, Any]] | None:
    """Each item's answer, or None when any item must take the normal path.

    Module level so that tests can wrap it and see that a list was answered here. One loop,
    no call per value but the coercion: a month's answer passes some 5,000 values through it.
    """
    origin = plan.origin
    fields = plan.fields
    coercible = _COERCIBLE
    rows: list[dict[str, Any]] = []
    append = rows.append
    try:
        for item in items:
            if type(item) is not origin:
                return None
            row: dict[str, Any] = {}
            for response_name, python_name, coerce, non_null, nested in fields:
                if nested is not None:
                    row[response_name] = _nested_value(item, nested, non_null)
                    continue
                if python_name is None:  # __typename
                    row[response_name] = coerce(None)
                    continue
                value = getattr(item, python_name)
                if value is None or value is Undefined:
                    if non_null:
                        return None
                    row[response_name] = None
                    continue
                kind = type(value)
                if not (coercible.get(kind) or _coercible(kind)):
                    return None
                coerced = coerce(value)
                if coerced is None or coerced is Undefined:
                    return None
                row[response_name] = coerced
            append(row)
    except Exception:
        # _Fallback, a value that does not coerce, a pure resolver that raised: the normal
        # path takes the list and raises the error where it belongs.
        return None
    return rows


def _plain_field(
    parent: GraphQLObjectType, response_name: str, details: FieldDetailsList
) -> PlainField | None:
    node = details[0].node
    if any(detail.defer_usage is not None for detail in details):
        return None
    name = node.name.value
    if name == _TYPENAME:
        type_name = parent.name
        return PlainField(response_name, None, lambda _: type_name, True)
    field_def = parent.fields.get(name)
    if field_def is None or field_def.args or node.arguments:
        return None
    definition = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    # A basic field's resolver is `getattr(source, python_name)`: no Info, no permission
    # classes (they are field extensions), and no exception handlers, which only apply to
    # fields whose type holds an error object type, never to a scalar or enum.
    if (
        not isinstance(definition, StrawberryField)
        or not definition.is_basic_field
        or definition.default_resolver is not getattr
        or not getattr(field_def.resolve, "_is_default", False)
    ):
        return None
    field_type: GraphQLOutputType = field_def.type
    non_null = isinstance(field_type, GraphQLNonNull)
    named = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
    if not is_leaf_type(named):
        return None
    leaf: GraphQLLeafType = named  # type: ignore[assignment]
    return PlainField(response_name, definition.python_name, leaf.coerce_output_value, non_null)


class PlainRowsExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, answering lists of plain rows directly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Keyed like graphql-core's own subfield memo (item type, identity of the field
        # group), the field group kept alive with its plan so that its id is not reused.
        self._plain_plans: dict[
            tuple[GraphQLObjectType, int], tuple[FieldDetailsList, PlainRows | None]
        ] = {}

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[list[Any]]:
        # Only a list or tuple: a generator could not be read again by the normal path.
        if position_context is None and type(result) in (list, tuple):
            plan = self._plain_plan(return_type.of_type, field_details_list)
            if plan is not None:
                rows = answer_rows(plan, result)
                if rows is not None:
                    return rows
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _plain_plan(
        self, item_type: GraphQLOutputType, field_details_list: FieldDetailsList
    ) -> PlainRows | None:
        if isinstance(item_type, GraphQLNonNull):
            item_type = item_type.of_type
        if not isinstance(item_type, GraphQLObjectType):
            return None  # a leaf, a nested list, or an abstract type
        key = (item_type, id(field_details_list))
        cached = self._plain_plans.get(key)
        if cached is None:
            cached = (field_details_list, self._build_plan(item_type, field_details_list))
            self._plain_plans[key] = cached
        return cached[1]

    def _build_plan(
        self, item_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> PlainRows | None:
        middleware = self.middleware_manager
        if middleware is not None and middleware.middlewares:
            return None
        if item_type.is_type_of is not None:
            return None  # its own check of each item (interfaces, casts) decides
        definition = item_type.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if not isinstance(definition, StrawberryObjectDefinition):
            return None
        for details in field_details_list:
            if details.defer_usage is not None or any(
                directive.name.value == "stream" for directive in details.node.directives or ()
            ):
                return None
        try:
            grouped, new_defer_usages, forbidden = self.collect_subfields(
                item_type, field_details_list
            )
        except GraphQLError:
            return None  # the normal path collects again and reports it
        if new_defer_usages or forbidden:
            return None
        fields: list[PlainField] = []
        for response_name, field_group in grouped.items():
            field = _plain_field(item_type, response_name, field_group) or self._nested_field(
                item_type, response_name, field_group
            )
            if field is None:
                return None
            fields.append(field)
        return PlainRows(definition.origin, tuple(fields))

    def _nested_field(
        self, parent: GraphQLObjectType, response_name: str, details: FieldDetailsList
    ) -> PlainField | None:
        """A pure resolver's list of plain rows, its arguments coerced once for the document."""
        if any(detail.defer_usage is not None for detail in details):
            return None
        first = details[0]
        field_def = parent.fields.get(first.node.name.value)
        if field_def is None:
            return None
        definition = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if not isinstance(definition, StrawberryField) or not definition.metadata.get(_PURE_KEY):
            return None
        resolver = definition.base_resolver
        if (
            resolver is None
            or definition.extensions  # permission classes among them
            or resolver.is_async
            or resolver.self_parameter is None
            or resolver.info_parameter is not None
            or resolver.root_parameter is not None
            or resolver.parent_parameter is not None
        ):
            return None
        field_type: GraphQLOutputType = field_def.type
        non_null = isinstance(field_type, GraphQLNonNull)
        list_type = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
        if not isinstance(list_type, GraphQLList):
            return None
        # Scalar arguments only: their coerced values are what the resolver takes, by the
        # Python names Strawberry would pass them under.
        python_names: dict[str, str] = {}
        for name, argument in field_def.args.items():
            named = argument.type
            if isinstance(named, GraphQLNonNull):
                named = named.of_type
            backref = argument.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not isinstance(named, GraphQLScalarType) or not isinstance(
                backref, StrawberryArgument
            ):
                return None
            python_names[name] = backref.python_name
        try:
            values = get_argument_values(
                field_def,
                first.node,
                self.variable_values,
                first.fragment_variable_values,
                self.hide_suggestions,
            )
        except GraphQLError:
            return None  # the normal path coerces again and reports it
        rows = self._plain_plan(list_type.of_type, details)
        if rows is None:
            return None
        kwargs = {python_names[name]: value for name, value in values.items()}
        return PlainField(
            response_name,
            definition.python_name,
            _as_is,
            non_null,
            NestedRows(resolver, kwargs, rows),
        )


def _as_is(value: Any) -> Any:
    return value
