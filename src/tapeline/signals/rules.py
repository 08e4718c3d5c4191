"""Rules: which detectors run on which series, with which parameters. Pure (no settings, no files).

A rule names a detector and selects series by scope (venue | asset), interval, asset, venue and market
kind; `params` are the detector's own, validated by its parameter model, so a typo or a bad value fails
at start with the rule and the field named. `name` tells two rules of one detector apart (the signal id
includes it). The defaults (`default_rules`) follow docs/DOMAIN.md "Signals".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tapeline.domain.intervals import INTERVAL_NS
from tapeline.signals.model import ASSET, VENUE, Detector, SeriesKey

# detector name -> (its parameter model, a factory from validated parameters and the rule's name)
Factory = Callable[[Any, str], Detector]
REGISTRY: dict[str, tuple[type[BaseModel], Factory, frozenset[str]]] = {}


def register(name: str, params: type[BaseModel], scopes: frozenset[str]) -> Callable[[Factory], Factory]:
    """Make a detector available to rules (each detector module registers itself; see signals/detectors)."""

    def wrap(factory: Factory) -> Factory:
        REGISTRY[name] = (params, factory, scopes)
        return factory

    return wrap


class RuleError(ValueError):
    """A rule set that cannot run; the message names the rule and the field."""


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: str
    name: str = ""  # default: the detector's name
    scopes: list[str] = Field(default_factory=list)  # default: every scope the detector supports
    intervals: list[str] = Field(default_factory=lambda: ["1m"])
    assets: list[str] = Field(default_factory=lambda: ["*"])
    venues: list[str] = Field(default_factory=lambda: ["*"])  # venue series only
    kinds: list[str] = Field(default_factory=lambda: ["*"])  # market kinds: perp, spot, all
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, value: str) -> str:
        if value not in REGISTRY:
            raise ValueError(f"unknown detector {value!r}; known: {', '.join(sorted(REGISTRY))}")
        return value

    @field_validator("intervals")
    @classmethod
    def _known_intervals(cls, value: list[str]) -> list[str]:
        unknown = [i for i in value if i not in INTERVAL_NS]
        if unknown or not value:
            raise ValueError(f"unknown intervals {unknown or value}; known: {', '.join(INTERVAL_NS)}")
        return value

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        unknown = [k for k in value if k not in ("*", "perp", "spot", "all")]
        if unknown:
            raise ValueError(f"unknown market kinds {unknown}; known: perp, spot, all (or *)")
        return value

    @model_validator(mode="after")
    def _scopes_and_params(self) -> Rule:
        _params, _factory, supported = REGISTRY[self.detector]
        unknown = [s for s in self.scopes if s not in supported]
        if unknown:
            raise ValueError(f"detector {self.detector} runs on {sorted(supported)} series, not {unknown}")
        return self

    @property
    def rule_name(self) -> str:
        return self.name or self.detector

    def selects(self, key: SeriesKey) -> bool:
        scopes = self.scopes or sorted(REGISTRY[self.detector][2])
        return (
            key.scope in scopes
            and key.interval in self.intervals
            and _matches(self.assets, key.asset)
            and (key.scope != VENUE or _matches(self.venues, key.venue))
            and _matches(self.kinds, key.kind)
        )

    def build(self) -> Detector:
        params_model, factory, _scopes = REGISTRY[self.detector]
        try:
            params = params_model.model_validate(self.params)
        except ValidationError as exc:
            problems = "; ".join(f"params.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise RuleError(f"rule {self.rule_name!r} ({self.detector}): {problems}") from None
        return factory(params, self.rule_name)


def _matches(patterns: Sequence[str], value: str) -> bool:
    return "*" in patterns or value in patterns


class Rules:
    """A validated rule set; `detectors_for` answers (and caches) which detectors run on a series."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        names = [r.rule_name for r in rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise RuleError(f"rule names must be unique (give each rule of one detector a `name`): {twice}")
        self.rules = list(rules)
        self._detectors = [(rule, rule.build()) for rule in self.rules]
        self._cache: dict[SeriesKey, tuple[Detector, ...]] = {}

    @classmethod
    def parse(cls, data: Sequence[Mapping[str, Any]], source: str = "rules") -> Rules:
        """Rules from plain data (a settings file or the environment); errors name the rule and the field."""
        load_detectors()
        rules = []
        for n, item in enumerate(data):
            try:
                rules.append(Rule.model_validate(item))
            except ValidationError as exc:
                label = item.get("name") or item.get("detector") if isinstance(item, Mapping) else None
                problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'rule'}: {e['msg']}" for e in exc.errors())
                raise RuleError(f"{source}: rule {n + 1}{f' ({label})' if label else ''}: {problems}") from None
        try:
            return cls(rules)
        except RuleError as exc:
            raise RuleError(f"{source}: {exc}") from None

    def only(self, detectors: Sequence[str]) -> Rules:
        """The rules of these detectors (or rule names); unknown ones are an error."""
        known = {r.detector for r in self.rules} | {r.rule_name for r in self.rules}
        unknown = [d for d in detectors if d not in known]
        if unknown:
            raise RuleError(f"no rule runs detector {unknown}; rules run: {', '.join(sorted(known))}")
        return Rules([r for r in self.rules if r.detector in detectors or r.rule_name in detectors])

    def at_intervals(self, intervals: Sequence[str]) -> Rules:
        """The same rules, each at these intervals instead of its own."""
        return Rules([r.model_copy(update={"intervals": list(intervals)}) for r in self.rules])

    def pairs(self) -> list[tuple[Rule, Detector]]:
        return list(self._detectors)

    def detectors_for(self, key: SeriesKey) -> tuple[Detector, ...]:
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = tuple(d for rule, d in self._detectors if rule.selects(key))
        return found

    @property
    def intervals(self) -> frozenset[str]:
        return frozenset(i for r in self.rules for i in r.intervals)


def load_detectors() -> None:
    """Import the detector modules, which register themselves (they import this module: hence not at the top)."""
    import tapeline.signals.detectors  # noqa: F401


def default_rules() -> Rules:
    """Every detector with DOMAIN's defaults, at 1m (divergence also at 5m and 15m)."""
    load_detectors()
    items: list[dict[str, Any]] = [{"detector": name} for name in sorted(REGISTRY)]
    for item in items:
        if item["detector"] == "divergence":
            item["intervals"] = ["1m", "5m", "15m"]
    return Rules.parse(items, "default rules")


__all__ = ["ASSET", "REGISTRY", "VENUE", "Rule", "RuleError", "Rules", "default_rules", "register"]
