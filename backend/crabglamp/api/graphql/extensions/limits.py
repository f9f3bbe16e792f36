"""Limits on what one GraphQL document may ask (CONTRACTS.md §3.5), with Strawberry's own extensions.

Depth, aliases and tokens use Strawberry's limiters (the depth and alias rules built once, see
LIMIT_RULES); the cost of a document (how many values it may produce) is a validation rule
added through Strawberry's `AddValidationRules`. Parsing and validation are cached per document
(Strawberry's ParserCache and ValidationCache). All of them only read the document, so cyclic
fragments (refused by GraphQL's own NoFragmentCycles rule) must not send them into a loop: the
cost rule tracks the fragments it is inside.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as aliases_rule
from strawberry.extensions.query_depth_limiter import IgnoreContext
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule

from crabglamp.api.graphql.request_log.queries import MAX_PAGE

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2_000
MAX_COST = 50_000
# A list without a size argument is assumed to hold this many items (a month has 31 days).
DEFAULT_LIST_SIZE = 31


def _introspection(context: IgnoreContext) -> bool:
    # GraphiQL's own schema query nests deeper than any data query; it is off in production.
    return context.field_name.startswith("__")


def _page_size(node: FieldNode) -> int | None:
    """The `first` argument of a paginated field; a variable may ask for the largest page."""
    for argument in node.arguments or ():
        if argument.name.value == "first":
            value = argument.value
            return max(int(value.value), 1) if isinstance(value, IntValueNode) else MAX_PAGE
    return None


def _unwrap(field_type: Any) -> tuple[Any, bool]:
    is_list = False
    while isinstance(field_type, (GraphQLNonNull, GraphQLList)):
        is_list = is_list or isinstance(field_type, GraphQLList)
        field_type = field_type.of_type
    return field_type, is_list


class _CostRule(ValidationRule):
    """Each field costs 1, times the size of every list it sits in: `first` for a paginated
    field, DEFAULT_LIST_SIZE for any other list."""

    max_cost = MAX_COST

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        document = context.document
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        schema = context.schema
        for definition in document.definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            root = schema.get_root_type(definition.operation)
            if root is None:
                continue
            cost = self._cost(definition.selection_set, root, frozenset())
            if cost > self.max_cost:
                name = definition.name.value if definition.name else "anonymous"
                context.report_error(
                    GraphQLError(
                        f"'{name}' costs {cost}, above the limit of {self.max_cost}: ask for "
                        "fewer fields, or smaller pages (first)",
                        definition,
                    )
                )

    def _cost(
        self,
        selection_set: SelectionSetNode | None,
        parent: GraphQLNamedType,
        inside: frozenset[str],
    ) -> int:
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self._field_cost(selection, parent, inside)
            elif isinstance(selection, InlineFragmentNode):
                target = parent
                if selection.type_condition is not None:
                    found = self.context.schema.get_type(selection.type_condition.name.value)
                    target = found if found is not None else parent
                total += self._cost(selection.selection_set, target, inside)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in inside:
                    continue  # unknown or cyclic: other rules report it
                found = self.context.schema.get_type(fragment.type_condition.name.value)
                total += self._cost(
                    fragment.selection_set, found if found is not None else parent, inside | {name}
                )
        return total

    def _field_cost(self, node: FieldNode, parent: GraphQLNamedType, inside: frozenset[str]) -> int:
        if node.name.value.startswith("__") or not isinstance(
            parent, (GraphQLObjectType, GraphQLInterfaceType)
        ):
            return 1
        definition = parent.fields.get(node.name.value)
        if definition is None:
            return 1  # unknown field: FieldsOnCorrectType reports it
        named, is_list = _unwrap(definition.type)
        children = self._cost(node.selection_set, named, inside)
        page = _page_size(node)
        if page is not None:
            size = page
        elif is_list and not parent.name.endswith("Connection"):
            size = DEFAULT_LIST_SIZE
        else:
            size = 1  # a connection's edges were counted by its `first` already
        return 1 + size * children


class QueryCostLimiter(AddValidationRules):
    """Refuse documents that could produce more than `max_cost` values."""

    def __init__(self, max_cost: int = MAX_COST) -> None:
        rule = type("QueryCostRule", (_CostRule,), {"max_cost": max_cost})
        super().__init__([rule])


# The rules of Strawberry's QueryDepthLimiter and MaxAliasesLimiter and our cost rule, built
# once: those extensions make a new rule class per instance (per request), and a new class
# would defeat ValidationCache, whose key includes the rules. Rule classes hold no state (a
# rule is instantiated per validation), so one class serves every request.
LIMIT_RULES: tuple[type[ASTValidationRule], ...] = (
    depth_rule(MAX_DEPTH, _introspection),
    aliases_rule(MAX_ALIASES),
    *QueryCostLimiter().validation_rules,
)
# Bounded LRU caches keyed by the document's text (and the rules): a dashboard sends the same
# few documents again and again, and validating a large one costs milliseconds each time.
CACHED_DOCUMENTS = 256


def limit_extensions() -> list[Callable[[], SchemaExtension]]:
    # Factories, not instances: Strawberry builds fresh extensions for every request.
    return [
        partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
        partial(AddValidationRules, list(LIMIT_RULES)),
        # The token limit still applies: it is a parse option, and a refused parse is not cached.
        partial(ParserCache, maxsize=CACHED_DOCUMENTS),
        partial(ValidationCache, maxsize=CACHED_DOCUMENTS),
    ]
