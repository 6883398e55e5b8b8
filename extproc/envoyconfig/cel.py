"""CEL expressions as Envoy's matchers take them: a parsed syntax tree, not text (Envoy 1.40's
CEL matcher ignores `cel_expr_string`). Only what the gateway's matchers need: string
constants, names, field selection, indexing, `==` and `&&`; and the two matcher messages the
Envoy API library lacks."""

from __future__ import annotations

import itertools

import betterproto2
from envoy_data_plane.cel.expr import (
    Constant,
    Expr,
    ExprCall,
    ExprIdent,
    ExprSelect,
    ParsedExpr,
)
from envoy_data_plane.message_pool import default_message_pool
from envoy_data_plane.xds.type.v3 import CelExpression
from pydantic.dataclasses import dataclass


class Builder:
    """Makes the nodes of one expression: each node gets an id of its own."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def name(self, name: str) -> Expr:
        return Expr(id=next(self._ids), ident_expr=ExprIdent(name=name))

    def path(self, dotted: str) -> Expr:
        """`a.b.c`: a name, then field selections."""
        first, *fields = dotted.split(".")
        expr = self.name(first)
        for field in fields:
            expr = Expr(id=next(self._ids), select_expr=ExprSelect(operand=expr, field=field))
        return expr

    def text(self, value: str) -> Expr:
        return Expr(id=next(self._ids), const_expr=Constant(string_value=value))

    def index(self, container: Expr, *keys: str) -> Expr:
        """`container[key]…`, string keys."""
        for key in keys:
            container = self._call("_[_]", container, self.text(key))
        return container

    def equal(self, left: Expr, right: Expr) -> Expr:
        return self._call("_==_", left, right)

    def both(self, left: Expr, right: Expr) -> Expr:
        return self._call("_&&_", left, right)

    def _call(self, function: str, *args: Expr) -> Expr:
        return Expr(id=next(self._ids), call_expr=ExprCall(function=function, args=list(args)))


def parsed(expr: Expr) -> ParsedExpr:
    return ParsedExpr(expr=expr)


@dataclass(eq=False, repr=False, config={"extra": "forbid"})
class CelMatcher(betterproto2.Message):
    """`xds.type.matcher.v3.CelMatcher`: true when the expression is."""

    expr_match: CelExpression | None = betterproto2.field(
        1, betterproto2.TYPE_MESSAGE, optional=True
    )
    description: str = betterproto2.field(2, betterproto2.TYPE_STRING)


@dataclass(eq=False, repr=False, config={"extra": "forbid"})
class HttpAttributesCelMatchInput(betterproto2.Message):
    """`xds.type.matcher.v3.HttpAttributesCelMatchInput`: the request's attributes, for CEL."""


_PACKAGE = "xds.type.matcher.v3"
default_message_pool.register_message(_PACKAGE, "CelMatcher", CelMatcher)
default_message_pool.register_message(
    _PACKAGE, "HttpAttributesCelMatchInput", HttpAttributesCelMatchInput
)
