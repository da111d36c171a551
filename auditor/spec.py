"""Load and validate token specs and the registry into typed objects; every error names file:line and field."""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import math
import os
import re
import stat
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from auditor import catalogue
from auditor.addresses import check_address
from auditor.text import inert

REGISTRY_FILE = "registry.yaml"
SPEC_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
NAME_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
POOL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
SYMBOL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,31}")
MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 64  # specs nest a few levels; a bound keeps the recursive composer far from Python's stack limit
MAX_INTEGER = 2**256 - 1  # nothing on an EVM chain is larger; bigger literals are typos or attacks
SHOWN_CHARS = 120  # how much of an input value an error message quotes

# Venues the registry may list and the pool kinds it may use: the names the venue modules register
# (auditor/adapters/), read from their sources: `auditor validate` does not import the chain layer.
VENUE_NAMES = tuple(sorted(catalogue.venue_names()))
POOL_KINDS = tuple(sorted(catalogue.pool_kinds()))

def shown(value: object) -> str:
    """An input value quoted for an error message: its repr, cut to SHOWN_CHARS, made inert."""
    return inert(repr(value), SHOWN_CHARS)


def did_you_mean(value: str, known: Collection[str], listed: int = 30) -> str:
    """The suffix of an "unknown name" message: the closest known name, then the known names."""
    names = sorted(known)
    # difflib is quadratic in the worst case: a megabyte-long typo gets the list, not a suggestion.
    hint = difflib.get_close_matches(value, names, n=1) if len(value) <= 200 else []
    suffix = f"; did you mean {hint[0]!r}?" if hint else ""
    if not names:
        return suffix + " (none are known)"
    more = f", ... ({len(names) - listed} more)" if len(names) > listed else ""
    return f"{suffix} (expected one of: {', '.join(names[:listed])}{more})"


class SpecError(Exception):
    """A problem in a spec or registry file, located by file, line and field path.

    Every part is made inert on the way in: paths, keys and values come from untrusted input and
    the message is printed as one line on a terminal.
    """

    def __init__(self, path: str, line: int, field_path: str, message: str) -> None:
        super().__init__(inert(message))
        self.path = inert(path)
        self.line = line
        self.field_path = inert(field_path, SHOWN_CHARS * 2)
        self.message = inert(message)

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        return f"{where}: {self.field_path}: {self.message}" if self.field_path else f"{where}: {self.message}"


# ---------------------------------------------------------------------------------------------
# Typed objects
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    name: str
    chain_id: int
    multicall3: str | None = None
    log_span: int | None = None
    discover_from: int = 0  # first block of the discovery scan of issuer accounts' transfers
    lz_eid: int | None = None  # LayerZero V2 endpoint id: finds an OFT's copies on this chain


@dataclass(frozen=True)
class Price:
    """How a hard asset is priced: at par (1 USD) or by a Chainlink-style feed."""

    feed: str | None = None
    heartbeat_s: int = 86_400


@dataclass(frozen=True)
class Asset:
    chain: str
    symbol: str
    address: str
    decimals: int
    price: Price


@dataclass(frozen=True)
class Venue:
    name: str
    chain: str
    address: str
    from_block: int


@dataclass(frozen=True)
class Pool:
    """A DEX pool that quotes a market price of `base` in `quote` (which must be a priced hard asset)."""

    chain: str
    name: str
    address: str
    kind: str  # the venue module that prices it: "constant_price" (price(), 1e18), "uniswap_v2", ...
    base: str
    quote: str


@dataclass(frozen=True)
class Registry:
    path: str
    chains: dict[str, Chain]
    assets: dict[str, dict[str, Asset]]
    venues: dict[str, dict[str, Venue]]
    pools: dict[str, dict[str, Pool]] = field(default_factory=dict)


@dataclass(frozen=True)
class Deployment:
    chain: str
    address: str
    bridged: bool = False


@dataclass(frozen=True)
class Holder:
    """An address on a chain with a human label: an issuer account or a bridge escrow."""

    chain: str
    address: str
    label: str = ""


@dataclass(frozen=True)
class Token:
    symbol: str
    deployments: tuple[Deployment, ...]
    par_usd: float = 1.0
    escrow: tuple[Holder, ...] = ()
    layerzero: Holder | None = None  # one OApp of the token (its OFTAdapter or an OFT): the mesh is found from it


@dataclass(frozen=True)
class Claims:
    as_of: dt.date | None = None
    assets_usd: float | None = None
    apy: float | None = None
    strategies: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Offchain:
    label: str
    usd: float


@dataclass(frozen=True)
class Attestation:
    """A proof-of-reserve feed (Chainlink-style latestRoundData) the issuer publishes for off-chain reserves."""

    chain: str
    feed: str
    label: str
    heartbeat_s: int = 86_400


@dataclass(frozen=True)
class Spec:
    path: str
    id: str
    name: str
    token: Token
    accounts: tuple[Holder, ...] = ()
    holdings: tuple[Holder, ...] = ()
    claims: Claims = field(default_factory=Claims)
    offchain: tuple[Offchain, ...] = ()
    depends_on: tuple[str, ...] = ()
    attestations: tuple[Attestation, ...] = ()


# ---------------------------------------------------------------------------------------------
# Located YAML: compose nodes (which carry line numbers), then validate them against kinds
# ---------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (exponential blow-up) and nesting deeper than MAX_DEPTH."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not supported in specs", event.start_mark
            )
        if self.depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nesting is deeper than {MAX_DEPTH} levels",
                                              event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_YAML = "tag:yaml.org,2002:"
# Tags a scalar may carry: the ones YAML resolves plain scalars to. Anything else (!!binary,
# !!python/..., local !tags) is refused before any constructor sees it.
SCALAR_TAGS = frozenset(_YAML + t for t in ("str", "int", "float", "bool", "null", "timestamp"))


@dataclass
class _Ctx:
    path: str
    loader: _Loader
    # Names a Ref may point to, by target ("chain", "spec", "flag"); an absent target is not checked.
    names: dict[str, frozenset[str]] = field(default_factory=dict)

    def fail(self, node: yaml.Node, field_path: str, message: str) -> SpecError:
        return SpecError(self.path, node.start_mark.line + 1, field_path, message)


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag.endswith(":null"):
        return "nothing"
    return shown(node.value)


def _check_tag(ctx: _Ctx, node: yaml.Node, path: str, expected: str) -> None:
    if isinstance(node, yaml.ScalarNode):
        allowed = node.tag in SCALAR_TAGS
    else:
        allowed = node.tag == _YAML + ("map" if isinstance(node, yaml.MappingNode) else "seq")
    if not allowed:
        raise ctx.fail(node, path, f"unsupported YAML tag {shown(node.tag)}; expected {expected}")


class Kind:
    """One shape of value in the spec format: validates a located node, and describes itself as JSON Schema."""

    description = ""

    def load(self, ctx: _Ctx, node: yaml.Node, path: str) -> Any:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def _scalar(self, ctx: _Ctx, node: yaml.Node, path: str, expected: str) -> yaml.ScalarNode:
        if not isinstance(node, yaml.ScalarNode):
            raise ctx.fail(node, path, f"expected {expected}, got {_describe(node)}")
        _check_tag(ctx, node, path, expected)
        return node

    def _construct(self, ctx: _Ctx, node: yaml.ScalarNode, path: str, expected: str) -> Any:
        try:
            return ctx.loader.construct_object(node, deep=True)
        # Broad on purpose: PyYAML's constructors trust their input, so an explicitly tagged scalar
        # they cannot parse fails with whatever breaks first (`!!bool "6"` a KeyError, `!!timestamp
        # "soon"` an AttributeError, `!!int ""` an IndexError, a 5000-digit int a ValueError).
        except Exception:
            tag = node.tag.removeprefix(_YAML)
            raise ctx.fail(node, path, f"expected {expected}, got {_describe(node)} (as !!{tag})") from None

    def _doc(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.description:
            schema["description"] = self.description
        return schema


class Text(Kind):
    def __init__(self, description: str = "", pattern: re.Pattern[str] | None = None, what: str = "") -> None:
        self.description = description
        self.pattern = pattern
        self.what = what or "a non-empty string"

    def load(self, ctx: _Ctx, node: yaml.Node, path: str) -> str:
        value = self._text(ctx, node, path)
        self._match(ctx, node, path, value)
        return value

    def _text(self, ctx: _Ctx, node: yaml.Node, path: str) -> str:
        scalar = self._scalar(ctx, node, path, self.what)
        # The text as written: `symbol: NO` stays "NO" instead of YAML 1.1's False.
        value = str(scalar.value).strip()
        if not value or (scalar.style is None and scalar.tag.endswith(":null")):
            raise ctx.fail(node, path, f"expected {self.what}, got nothing")
        if len(value) > 10_000:
            raise ctx.fail(node, path, "string is too long (more than 10000 characters)")
        return value

    def _match(self, ctx: _Ctx, node: yaml.Node, path: str, value: str) -> None:
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise ctx.fail(node, path, f"expected {self.what}, got {shown(value)}")

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string", "minLength": 1}
        if self.pattern is not None:
            out["pattern"] = f"^{self.pattern.pattern}$"
        return self._doc(out)


class Url(Text):
    def __init__(self, description: str = "") -> None:
        super().__init__(description, re.compile(r"https?://\S+"), "an http(s) URL")


class Address(Kind):
    def __init__(self, description: str = "") -> None:
        self.description = description

    def load(self, ctx: _Ctx, node: yaml.Node, path: str) -> str:
        # An unquoted 0x... is an int to YAML 1.1; the text as written is what the author meant.
        scalar = self._scalar(ctx, node, path, "an address")
        try:
            return check_address(str(scalar.value).strip())
        except ValueError as exc:
            raise ctx.fail(node, path, f"{exc}, got {_describe(node)}") from None

    def schema(self) -> dict[str, Any]:
        return self._doc({"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"})


class Ref(Text):
    """A name that must exist elsewhere: a chain in the registry, a spec id, a venue, a flag.

    The known names are fixed (`names`) or come with the document being loaded (`_Ctx.names`).
    """

    def __init__(self, target: str, description: str = "", where: str = "",
                 names: Collection[str] | None = None) -> None:
        pattern = SPEC_ID if target == "spec" else NAME_KEY
        super().__init__(description, pattern, f"a {target} name")
        self.target = target
        self.where = where
        self.names = None if names is None else frozenset(names)

    def load(self, ctx: _Ctx, node: yaml.Node, path: str) -> str:
        value = self._text(ctx, node, path)
        known = self.names if self.names is not None else ctx.names.get(self.target)
        # Membership before the pattern, so that `Morpho_Blue` or `xUSD` still get a did-you-mean.
        if known is not None and value not in known:
            where = f" (not in {self.where})" if self.where else ""
            raise ctx.fail(node, path, f"unknown {self.target} {shown(value)}{where}{did_you_mean(value, known)}")
        self._match(ctx, node, path, value)
        return value

    def schema(self) -> dict[str, Any]:
        out = super().schema()
        if self.names is not None:
            out["enum"] = sorted(self.names)
        return out


class Number(Kind):
    def __init__(
        self,
        description: str = "",
        minimum: float | None = None,
        maximum: float | None = None,
        integer: bool = False,
    ) -> None:
        self.description = description
        self.minimum = minimum
        self.maximum = maximum
        self.integer = integer

    def load(self, ctx: _Ctx, node: yaml.Node, path: str) -> Any:
        what = "an integer" if self.integer else "a number"
        scalar = self._scalar(ctx, node, path, what)
        value = self._construct(ctx, scalar, path, what)
        allowed = (int,) if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise ctx.fail(node, path, f"expected {what}, got {_describe(node)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ctx.fail(node, path, f"expected a finite number, got {value}")
        if isinstance(value, int) and abs(value) > MAX_INTEGER:
            raise ctx.fail(node, path, f"expected {what}, got one of {value.bit_length()} bits (more than 256)")
        if self.minimum is not None and value < self.minimum:
            raise ctx.fail(node, path, f"expected {what} >= {self.minimum:g}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ctx.fail(node, path, f"expected {what} <= {self.maximum:g}, got {value}")
        return value

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer" if self.integer else "number"}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return self._doc(out)


class Boolean(Kind):
    def __init__(self, description: str = "") -> None:
        self.description = description

    def load(self, ctx: _Ctx, node: yaml.Node, path: str) -> bool:
        value = self._construct(ctx, self._scalar(ctx, node, path, "true or false"), path, "true or false")
        if not isinstance(value, bool):
            raise ctx.fail(node, path, f"expected true or false, got {_describe(node)}")
        return value

    def schema(self) -> dict[str, Any]:
        return self._doc({"type": "boolean"})


class Date(Kind):
    def __init__(self, description: str = "") -> None:
        self.description = description

    def load(self, ctx: _Ctx, node: yaml.Node, path: str) -> dt.date:
        what = "a date YYYY-MM-DD"
        value = self._construct(ctx, self._scalar(ctx, node, path, what), path, what)
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise ctx.fail(node, path, f"expected {what}, got {_describe(node)}") from None

    def schema(self) -> dict[str, Any]:
        return self._doc({"type": "string", "format": "date"})


class Seq(Kind):
    def __init__(
        self,
        item: Kind,
        description: str = "",
        min_items: int = 0,
        unique_by: Callable[[Any], object] | None = None,
    ) -> None:
        self.item = item
        self.description = description
        self.min_items = min_items
        self.unique_by = unique_by

    def load(self, ctx: _Ctx, node: yaml.Node, path: str) -> tuple[Any, ...]:
        if not isinstance(node, yaml.SequenceNode):
            raise ctx.fail(node, path, f"expected a list, got {_describe(node)}")
        _check_tag(ctx, node, path, "a list")
        if len(node.value) < self.min_items:
            raise ctx.fail(node, path, f"expected at least {self.min_items} item(s), got {len(node.value)}")
        items: list[Any] = []
        seen: dict[object, int] = {}
        for index, child in enumerate(node.value):
            item_path = f"{path}[{index}]"
            value = self.item.load(ctx, child, item_path)
            if self.unique_by is not None:
                key = self.unique_by(value)
                if key in seen:
                    raise ctx.fail(child, item_path, f"duplicate of {path}[{seen[key]}]")
                seen[key] = index
            items.append(value)
        return tuple(items)

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "array", "items": self.item.schema()}
        if self.min_items:
            out["minItems"] = self.min_items
        return self._doc(out)


def _mapping_items(ctx: _Ctx, node: yaml.Node, path: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
    """The (key, key node, value node) pairs of a mapping, refusing non-string and duplicate keys."""
    if not isinstance(node, yaml.MappingNode):
        raise ctx.fail(node, path, f"expected a mapping, got {_describe(node)}")
    _check_tag(ctx, node, path, "a mapping")
    seen: dict[str, int] = {}
    items: list[tuple[str, yaml.Node, yaml.Node]] = []
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in SCALAR_TAGS:
            raise ctx.fail(key_node, path, "keys must be plain names")
        key = str(key_node.value)
        key_path = f"{path}.{key}" if path else key
        if key in seen:
            raise ctx.fail(key_node, key_path, f"duplicate key (first defined on line {seen[key]})")
        seen[key] = key_node.start_mark.line + 1
        items.append((key, key_node, value_node))
    return items


@dataclass(frozen=True)
class Field:
    kind: Kind
    required: bool = False
    default: Any = None


class Obj(Kind):
    """A mapping with a fixed set of keys; unknown keys are errors so that typos never drop a claim."""

    def __init__(
        self, fields: dict[str, Field], build: Callable[..., Any] | None = None, description: str = ""
    ) -> None:
        self.fields = fields
        self.build = build
        self.description = description

    def load(self, ctx: _Ctx, node: yaml.Node, path: str) -> Any:
        values: dict[str, Any] = {}
        for key, key_node, value_node in _mapping_items(ctx, node, path):
            key_path = f"{path}.{key}" if path else key
            if key not in self.fields:
                raise ctx.fail(key_node, key_path, f"unknown key{did_you_mean(key, self.fields)}")
            values[key] = self.fields[key].kind.load(ctx, value_node, key_path)
        for key, spec_field in self.fields.items():
            if key not in values:
                if spec_field.required:
                    key_path = f"{path}.{key}" if path else key
                    raise ctx.fail(node, key_path, "required field is missing")
                if spec_field.default is not None:
                    values[key] = spec_field.default
        return self.build(**values) if self.build is not None else values

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "object",
            "additionalProperties": False,
            "properties": {key: f.kind.schema() for key, f in self.fields.items()},
        }
        required = [key for key, f in self.fields.items() if f.required]
        if required:
            out["required"] = required
        return self._doc(out)


class MapOf(Kind):
    """A mapping from names (checked by `key`) to values of one kind; `build(key, value)` makes each entry."""

    def __init__(
        self,
        key: Text,
        value: Kind,
        build: Callable[[str, Any], Any] | None = None,
        description: str = "",
        min_items: int = 0,
    ) -> None:
        self.key = key
        self.value = value
        self.build = build
        self.description = description
        self.min_items = min_items

    def load(self, ctx: _Ctx, node: yaml.Node, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        items = _mapping_items(ctx, node, path)
        if len(items) < self.min_items:
            raise ctx.fail(node, path, f"expected at least {self.min_items} entry(ies)")
        for raw_key, key_node, value_node in items:
            key_path = f"{path}.{raw_key}" if path else raw_key
            key = self.key.load(ctx, key_node, key_path)
            value = self.value.load(ctx, value_node, key_path)
            out[key] = self.build(key, value) if self.build is not None else value
        return out

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object", "additionalProperties": self.value.schema()}
        if self.key.pattern is not None:
            out["propertyNames"] = {"pattern": f"^{self.key.pattern.pattern}$"}
        return self._doc(out)


class PriceKind(Kind):
    description = "`par` (worth 1 USD) or {feed: ADDRESS} for a Chainlink-style AggregatorV3 feed"
    _feed = Obj(
        {
            "feed": Field(Address("AggregatorV3 feed reporting the USD price"), required=True),
            "heartbeat_s": Field(Number("a price older than this is stale", minimum=1, integer=True)),
        },
        build=Price,
    )

    def load(self, ctx: _Ctx, node: yaml.Node, path: str) -> Price:
        if isinstance(node, yaml.ScalarNode):
            _check_tag(ctx, node, path, "`par`")
            if node.value != "par":
                raise ctx.fail(node, path, f"expected `par` or {{feed: ADDRESS}}, got {_describe(node)}")
            return Price()
        price: Price = self._feed.load(ctx, node, path)
        return price

    def schema(self) -> dict[str, Any]:
        return self._doc({"oneOf": [{"const": "par"}, self._feed.schema()]})


# ---------------------------------------------------------------------------------------------
# The formats
# ---------------------------------------------------------------------------------------------

_CHAIN = Ref("chain", "a chain name from the registry", "the registry")
_ADDRESS = Address()


def _holder(label_required: bool, description: str) -> Obj:
    return Obj(
        {
            "chain": Field(_CHAIN, required=True),
            "address": Field(_ADDRESS, required=True),
            "label": Field(Text("what this address is, shown in reports"), required=label_required),
        },
        build=Holder,
        description=description,
    )


def _chain_address(value: Any) -> object:
    return (value.chain, value.address)


SPEC_FORMAT = Obj(
    {
        "id": Field(Text("equals the file name without .yaml", SPEC_ID, "a lower-case id"), required=True),
        "name": Field(Text("human name of the issued token"), required=True),
        "token": Field(
            Obj(
                {
                    "symbol": Field(Text("ticker", SYMBOL_KEY, "a token symbol"), required=True),
                    "par_usd": Field(
                        Number("what one token claims to be worth, in USD", minimum=0, maximum=1e12),
                        default=1.0,
                    ),
                    "deployments": Field(
                        Seq(
                            Obj(
                                {
                                    "chain": Field(_CHAIN, required=True),
                                    "address": Field(_ADDRESS, required=True),
                                    "bridged": Field(
                                        Boolean("a bridged copy, backed by canonical tokens in escrow")
                                    ),
                                },
                                build=Deployment,
                            ),
                            "every chain where the token has supply",
                            min_items=1,
                            unique_by=_chain_address,
                        ),
                        required=True,
                    ),
                    "escrow": Field(
                        Seq(
                            _holder(False, "holder of canonical tokens that back bridged copies"),
                            unique_by=_chain_address,
                        )
                    ),
                    "layerzero": Field(_holder(False, "one LayerZero OApp of the token (its OFTAdapter or an OFT): "
                                                      "the copies on other chains are found from its peers")),
                },
                build=Token,
            ),
            required=True,
        ),
        "accounts": Field(
            Seq(
                _holder(True, "an address the issuer controls"),
                "the issuer's balance sheet",
                unique_by=_chain_address,
            )
        ),
        "holdings": Field(
            Seq(
                _holder(False, "another token the issuer holds (a vault share, an LP token, ...)"),
                "tokens to read balances of besides hard assets and issued tokens: unwrapped if ERC-4626, "
                "else listed as unverifiable",
                unique_by=_chain_address,
            )
        ),
        "claims": Field(
            Obj(
                {
                    "as_of": Field(Date("date of the claim")),
                    "assets_usd": Field(Number("assets the issuer claims, USD", minimum=0)),
                    "apy": Field(Number("claimed yield, as a fraction (0.18 = 18%)", minimum=0, maximum=100)),
                    "strategies": Field(Seq(Text(), "strategies the issuer says it runs")),
                    "sources": Field(Seq(Url(), "where the claims were published")),
                },
                build=Claims,
                description="what the issuer says publicly",
            )
        ),
        "offchain": Field(
            Seq(
                Obj(
                    {
                        "label": Field(Text(), required=True),
                        "usd": Field(Number(minimum=0), required=True),
                    },
                    build=Offchain,
                ),
                "assets claimed to exist off-chain: listed, never counted as verifiable",
            )
        ),
        "depends_on": Field(
            Seq(Ref("spec", "a spec id in protocols/", "protocols/"), "tokens this one holds", unique_by=lambda v: v)
        ),
        "attestations": Field(
            Seq(
                Obj(
                    {
                        "chain": Field(_CHAIN, required=True),
                        "feed": Field(_ADDRESS, required=True),
                        "label": Field(Text("what the feed attests, shown in reports"), required=True),
                        "heartbeat_s": Field(Number("seconds after which an answer is stale (default 86400)",
                                                    minimum=1, integer=True)),
                    },
                    build=Attestation,
                ),
                "proof-of-reserve feeds for off-chain reserves (latestRoundData, in USD): read at the pin and "
                "reported as attested, between verifiable and unverifiable; stale or unreadable ones are flagged",
                unique_by=lambda value: (value.chain, value.feed),
            )
        ),
    },
    description="A token spec of the reserve auditor: one issued token, its accounts and its claims.",
)


def _asset_map(chain: str, assets: dict[str, Any]) -> dict[str, Asset]:
    return {symbol: Asset(chain=chain, symbol=symbol, **fields) for symbol, fields in assets.items()}


def _pool_map(chain: str, pools: dict[str, Any]) -> dict[str, Pool]:
    return {name: Pool(chain=chain, name=name, **fields) for name, fields in pools.items()}


def _venue_map(name: str, per_chain: dict[str, Any]) -> dict[str, Venue]:
    return {chain: Venue(name=name, chain=chain, **fields) for chain, fields in per_chain.items()}


_CHAINS = MapOf(
    Text(pattern=NAME_KEY, what="a chain name"),
    Obj(
        {
            "chain_id": Field(Number("EIP-155 chain id", minimum=1, integer=True), required=True),
            "multicall3": Field(Address("Multicall3 address, if not the canonical one")),
            "log_span": Field(Number("largest eth_getLogs block range to ask for", minimum=1, integer=True)),
            "discover_from": Field(Number("first block scanned for issuer accounts' transfers (discovery and "
                                          "counterparties); default 0", minimum=0, integer=True)),
            "lz_eid": Field(Number("LayerZero V2 endpoint id of the chain (Ethereum 30101): an OFT's peers on it "
                                   "are found and their supply read", minimum=1, integer=True)),
        }
    ),
    build=lambda name, fields: Chain(name=name, **fields),
    description="chain name -> chain id",
    min_items=1,
)

REGISTRY_FORMAT = Obj(
    {
        "chains": Field(_CHAINS, required=True),
        "assets": Field(
            MapOf(
                _CHAIN,
                MapOf(
                    Text(pattern=SYMBOL_KEY, what="a token symbol"),
                    Obj(
                        {
                            "address": Field(_ADDRESS, required=True),
                            "decimals": Field(Number(minimum=0, maximum=36, integer=True), required=True),
                            "price": Field(PriceKind(), required=True),
                        }
                    ),
                ),
                build=_asset_map,
                description="hard assets per chain: symbol -> address, decimals, price",
            ),
            default={},
        ),
        "venues": Field(
            MapOf(
                Ref("venue", where="the venues with an adapter", names=VENUE_NAMES),
                MapOf(
                    _CHAIN,
                    Obj(
                        {
                            "address": Field(_ADDRESS, required=True),
                            "from_block": Field(
                                Number("deployment block: event scans start here", minimum=0, integer=True),
                                required=True,
                            ),
                        }
                    ),
                ),
                build=_venue_map,
                description="lending venues: name -> chain -> address and deployment block",
            ),
            default={},
        ),
        "pools": Field(
            MapOf(
                _CHAIN,
                MapOf(
                    Text(pattern=POOL_KEY, what="a pool name"),
                    Obj(
                        {
                            "address": Field(_ADDRESS, required=True),
                            "kind": Field(
                                Ref("pool kind", "how the pool is priced: a venue module that prices pools",
                                    where="the venues that price pools", names=POOL_KINDS),
                                required=True,
                            ),
                            "base": Field(Address("the token priced"), required=True),
                            "quote": Field(Address("the token it is priced in (a hard asset)"), required=True),
                        }
                    ),
                ),
                build=_pool_map,
                description="DEX pools giving market prices of issued tokens, for oracle checks",
            ),
            default={},
        ),
    },
    description="The registry of the reserve auditor: chains, hard assets and venues.",
)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def read_bounded(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; anything else is a SpecError, without blocking.

    The file is stat-ed before it is opened, so a FIFO or a device is never opened (opening a FIFO
    blocks until a writer comes; /dev/zero never ends). It is opened non-blocking all the same and
    checked again, in case it was swapped between the two calls, and read up to limit + 1 bytes:
    the size check never depends on a size the file system reports.
    """
    shown_path = str(path)
    try:
        before = os.stat(path)
        if not stat.S_ISREG(before.st_mode):
            raise SpecError(shown_path, 1, "", f"not a regular file ({_file_kind(before.st_mode)})")
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
        with os.fdopen(os.open(path, flags), "rb") as handle:
            after = os.fstat(handle.fileno())
            if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
                raise SpecError(shown_path, 1, "", "the file changed while it was opened")
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise SpecError(shown_path, 1, "", f"cannot read file: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise SpecError(shown_path, 1, "", f"file is larger than {limit} bytes")
    return raw


def _yaml_error(shown_path: str, text: str, exc: yaml.YAMLError) -> SpecError:
    if isinstance(exc, yaml.reader.ReaderError):
        # The reader checks the whole text before parsing: name the line and the character.
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        return SpecError(shown_path, line, "", f"invalid YAML: character U+{ord(char):04X} is not allowed "
                         "(write it as an escape inside double quotes)")
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        return SpecError(shown_path, line, "", f"invalid YAML: {exc.problem or exc.context or 'syntax error'}")
    return SpecError(shown_path, 1, "", f"invalid YAML: {exc}")


def _compose(path: Path) -> tuple[_Ctx, yaml.Node]:
    shown_path = str(path)
    raw = read_bounded(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(shown_path, line, "", f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})") from None
    try:
        # Building the loader already reads (and checks) the text, so it is inside the handler too.
        loader = _Loader(text)
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        raise _yaml_error(shown_path, text, exc) from None
    except RecursionError:
        raise SpecError(shown_path, 1, "", "invalid YAML: nesting is too deep") from None
    if node is None:
        raise SpecError(shown_path, 1, "", "the file is empty: expected a mapping")
    return _Ctx(shown_path, loader), node


def _validate(ctx: _Ctx, kind: Kind, node: yaml.Node) -> Any:
    try:
        return kind.load(ctx, node, "")
    except RecursionError:
        raise SpecError(ctx.path, 1, "", "nesting is too deep") from None


def load_document(path: str | Path, kind: Kind, names: Mapping[str, Collection[str]] | None = None) -> Any:
    """Load any YAML file against a kind of this module (e.g. the demo's parameters), with located errors.

    `names` are the names each Ref target may take (e.g. {"flag": ids}); targets not given are not checked.
    """
    ctx, node = _compose(Path(path))
    ctx.names.update({target: frozenset(known) for target, known in (names or {}).items()})
    return _validate(ctx, kind, node)


def load_registry(path: str | Path) -> Registry:
    """Load `registry.yaml`: chains first, so that per-chain sections can be checked against them."""
    path = Path(path)
    ctx, node = _compose(path)
    chains_node = next(
        (v for k, _kn, v in _mapping_items(ctx, node, "") if k == "chains"),
        None,
    )
    if chains_node is not None:
        chains = _CHAINS.load(ctx, chains_node, "chains")
        ctx.names["chain"] = frozenset(chains)
        # One LayerZero endpoint id names one chain: a second would send an OFT's copies to the wrong chain.
        owners: dict[int, str] = {}
        for name, _key, value_node in _mapping_items(ctx, chains_node, "chains"):
            eid = chains[name].lz_eid if name in chains else None
            if eid is not None and eid in owners:
                raise SpecError(str(path), value_node.start_mark.line + 1, f"chains.{name}.lz_eid",
                                f"lz_eid {eid} is already {owners[eid]}'s: one endpoint id names one chain")
            if eid is not None:
                owners[eid] = name
    values = _validate(ctx, REGISTRY_FORMAT, node)
    return Registry(path=str(path), chains=values["chains"], **{k: values[k] for k in ("assets", "venues", "pools")})


def specs_in(folder: Path) -> list[Path]:
    """The spec files of a folder, in name order: its YAML files but the registry and those that are plainly
    something else (a policy, another registry: a YAML document that is no mapping with a spec's `id` or `token`
    at its top). One that has either, or that cannot be read as YAML (empty, broken, not a file), is taken for a
    spec, and loading it says what is wrong with it."""
    return sorted(p for p in folder.glob("*.yaml") if p.name != REGISTRY_FILE and _spec_like(p))


def _spec_like(path: Path) -> bool:
    try:
        seen = path.stat()
    except OSError:
        return True
    return _spec_like_version(str(path), seen.st_ino, seen.st_size, seen.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _spec_like_version(path: str, _inode: int, _size: int, _mtime_ns: int) -> bool:
    """`_spec_like` of one version of a file (every audit of a folder asks for each file beside it)."""
    try:
        _ctx, node = _compose(Path(path))  # bounded, and never blocks or expands aliases
    except SpecError:
        return True  # not readable as YAML: loading it as a spec names the file, line and problem
    if not isinstance(node, yaml.MappingNode):
        return False
    keys = {key.value for key, _value in node.value if isinstance(key, yaml.ScalarNode)}
    return "id" in keys or "token" in keys


def spec_ids_near(paths: Iterable[Path]) -> frozenset[str]:
    """Ids of every spec beside the given ones (their folders), for checking depends_on."""
    ids: set[str] = set()
    for folder in {p.parent for p in paths}:
        ids.update(p.stem for p in specs_in(folder))
    ids.update(p.stem for p in paths)
    return frozenset(ids)


def load_spec(path: str | Path, registry: Registry, spec_ids: frozenset[str] | None = None) -> Spec:
    """Load one spec; `spec_ids` are the ids depends_on may name (default: the specs beside it)."""
    path = Path(path)
    ctx, node = _compose(path)
    ctx.names["chain"] = frozenset(registry.chains)
    ctx.names["spec"] = spec_ids if spec_ids is not None else spec_ids_near([path])
    values = _validate(ctx, SPEC_FORMAT, node)
    if values["id"] != path.stem:
        id_line = next(kn.start_mark.line + 1 for k, kn, _v in _mapping_items(ctx, node, "") if k == "id")
        raise SpecError(ctx.path, id_line, "id", f"must equal the file name {path.stem!r}, got {values['id']!r}")
    return Spec(path=ctx.path, **values)


def spec_paths(paths: Sequence[str | Path], default_dir: str | Path = "protocols") -> list[Path]:
    """Expand CLI arguments (files or folders; none means the default folder) into spec files."""
    targets = [Path(p) for p in paths] or [Path(default_dir)]
    out: list[Path] = []
    for target in targets:
        if target.is_dir():
            out.extend(specs_in(target))
        else:
            out.append(target)
    return out


def json_schema(kind: Kind = SPEC_FORMAT, title: str = "reserve-auditor token spec") -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **kind.schema()}
