"""Does a payload's current schema break consumers of its committed (old) schema?

Within a topic version only optional fields may be added (DESIGN §3). Both directions
matter, because producers and consumers upgrade at different times:
- a new consumer must read what old producers wrote: no new required field, no narrowed
  type, no removed enum value, no tightened constraint (maxLength lowered, minimum
  raised, pattern changed …);
- an old consumer must read what new producers write: no removed field, no type
  widened to something it has never seen (e.g. a field that may now be null).
Adding an enum value is allowed: consumers must tolerate unknown enum values.

    python -m onegrid_contracts.compat                     # against contracts/schemas/
    python -m onegrid_contracts.compat --git-ref origin/main   # against another commit (CI)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Schema = dict[str, Any]

FIELD_REMOVED = "field removed"
FIELD_NOW_REQUIRED = "new required field"
TYPE_NARROWED = "type narrowed"
TYPE_WIDENED = "type widened"
ENUM_VALUE_REMOVED = "enum value removed"
CONSTRAINT_TIGHTENED = "constraint tightened"
PAYLOAD_REMOVED = "payload removed"


@dataclass(frozen=True)
class Break:
    path: str  # e.g. "CaseReported.location.lon"
    kind: str  # one of the constants above
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}: {self.detail}"


_MAX_DEPTH = 32  # recursive schemas: stop descending, the shape repeats from here
_JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")


class _Comparer:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.breaks: list[Break] = []
        self._seen: set[tuple[str, str, str]] = set()

    def add(self, path: str, kind: str, detail: str) -> None:
        self.breaks.append(Break(path, kind, detail))

    # -- schema helpers --------------------------------------------------------------------

    @staticmethod
    def _resolve(node: Any, root: Schema) -> Schema:
        """Follow local $refs ("#/$defs/X"), keeping sibling keywords of the $ref."""
        seen: set[str] = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/") or ref in seen:
                break
            seen.add(ref)
            target: Any = root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            node = {**target, **siblings}
        return node if isinstance(node, dict) else {}

    def _alternatives(self, node: Any, root: Schema) -> list[Schema]:
        node = self._resolve(node, root)
        for key in ("anyOf", "oneOf"):
            if key in node:
                alts: list[Schema] = []
                for sub in node[key]:
                    alts.extend(self._alternatives(sub, root))
                return alts
        return [node]

    @staticmethod
    def _types(alt: Schema) -> set[str]:
        if "type" in alt:
            t = alt["type"]
            return {t} if isinstance(t, str) else set(t)
        values = alt["enum"] if "enum" in alt else [alt["const"]] if "const" in alt else None
        if values is not None:
            return {_json_type(v) for v in values}
        if "properties" in alt or "additionalProperties" in alt:
            return {"object"}
        if "items" in alt or "prefixItems" in alt:
            return {"array"}
        return set(_JSON_TYPES)  # unconstrained

    def _by_type(self, node: Any, root: Schema) -> dict[str, list[Schema]]:
        out: dict[str, list[Schema]] = {}
        for alt in self._alternatives(node, root):
            for t in self._types(alt):
                out.setdefault(t, []).append(alt)
        return out

    # -- comparison ------------------------------------------------------------------------

    def compare(self, old: Any, new: Any, path: str) -> None:
        key = (path, json.dumps(old, sort_keys=True), json.dumps(new, sort_keys=True))
        if key in self._seen or path.count(".") + path.count("[") > _MAX_DEPTH:
            return
        self._seen.add(key)

        old_types = self._by_type(old, self.old_root)
        new_types = self._by_type(new, self.new_root)
        old_set, new_set = set(old_types), set(new_types)
        # integer ⊂ number
        old_set_eff = old_set - {"integer"} if "number" in new_set else old_set
        new_set_eff = new_set - {"integer"} if "number" in old_set else new_set
        for t in sorted(old_set_eff - new_set):
            self.add(path, TYPE_NARROWED, f"no longer accepts {t}")
        for t in sorted(new_set_eff - old_set):
            self.add(path, TYPE_WIDENED, f"may now be {t}, which old consumers never saw")

        for t in sorted(old_set & new_set):
            old_alts, new_alts = old_types[t], new_types[t]
            if t == "object":
                self._compare_objects(old_alts, new_alts, path)
            else:
                self._compare_scalars(old_alts[0], new_alts[0], t, path)
        if "integer" in old_set and "number" in new_set and "number" not in old_set:
            self._compare_scalars(old_types["integer"][0], new_types["number"][0], "number", path)

    def _compare_objects(self, old_alts: list[Schema], new_alts: list[Schema], path: str) -> None:
        if len(old_alts) == 1 and len(new_alts) == 1:
            self._compare_object(old_alts[0], new_alts[0], path)
            return
        # unions of objects: pair the variants by title
        new_by_title = {a.get("title", str(i)): a for i, a in enumerate(new_alts)}
        old_titles = set()
        for i, old_alt in enumerate(old_alts):
            title = old_alt.get("title", str(i))
            old_titles.add(title)
            if title not in new_by_title:
                self.add(path, TYPE_NARROWED, f"variant {title} removed")
            else:
                self._compare_object(old_alt, new_by_title[title], f"{path}<{title}>")
        for title in sorted(set(new_by_title) - old_titles):
            self.add(path, TYPE_WIDENED, f"new variant {title}, which old consumers never saw")

    def _compare_object(self, old: Schema, new: Schema, path: str) -> None:
        old_props: dict[str, Any] = old.get("properties", {})
        new_props: dict[str, Any] = new.get("properties", {})
        old_required = set(old.get("required", []))
        new_required = set(new.get("required", []))
        for name in sorted(old_props):
            if name not in new_props:
                self.add(_join(path, name), FIELD_REMOVED, "old consumers read it")
        for name in sorted(new_required - old_required):
            detail = "was optional" if name in old_props else "old producers do not send it"
            self.add(_join(path, name), FIELD_NOW_REQUIRED, detail)
        for name in sorted(set(old_props) & set(new_props)):
            self.compare(old_props[name], new_props[name], _join(path, name))

        old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
        if isinstance(old_extra, dict) and isinstance(new_extra, dict):
            self.compare(old_extra, new_extra, f"{path}{{*}}")
        elif old_extra in (None, True) and new_extra is False and not old_props:
            self.add(path, CONSTRAINT_TIGHTENED, "no longer accepts additional properties")
        old_names, new_names = old.get("propertyNames"), new.get("propertyNames")
        if new_names is not None and old_names != new_names:
            self.add(path, CONSTRAINT_TIGHTENED, f"property names now {new_names}")
        self._limits(old, new, path, "maxProperties", "minProperties")

    def _compare_scalars(self, old: Schema, new: Schema, t: str, path: str) -> None:
        # enums and constants
        old_values = _values(old)
        new_values = _values(new)
        if new_values is not None:
            if old_values is None:
                self.add(path, CONSTRAINT_TIGHTENED, f"now restricted to {sorted(new_values)}")
            else:
                for v in sorted(old_values - new_values):
                    self.add(path, ENUM_VALUE_REMOVED, f"{v!r} is no longer accepted")
        if t == "string":
            self._limits(old, new, path, "maxLength", "minLength")
            if new.get("pattern") is not None and old.get("pattern") != new.get("pattern"):
                self.add(
                    path,
                    CONSTRAINT_TIGHTENED,
                    f"pattern changed from {old.get('pattern')!r} to {new['pattern']!r}",
                )
            if new.get("format") is not None and old.get("format") != new.get("format"):
                self.add(path, CONSTRAINT_TIGHTENED, f"format now {new['format']!r}")
        elif t in ("number", "integer"):
            self._limits(old, new, path, "maximum", "minimum")
            self._limits(old, new, path, "exclusiveMaximum", "exclusiveMinimum")
            if new.get("multipleOf") is not None and old.get("multipleOf") != new["multipleOf"]:
                self.add(path, CONSTRAINT_TIGHTENED, f"multipleOf now {new['multipleOf']}")
        elif t == "array":
            self._limits(old, new, path, "maxItems", "minItems")
            if new.get("uniqueItems") and not old.get("uniqueItems"):
                self.add(path, CONSTRAINT_TIGHTENED, "items must now be unique")
            if "items" in old or "items" in new:
                self.compare(old.get("items", {}), new.get("items", {}), f"{path}[]")

    def _limits(self, old: Schema, new: Schema, path: str, upper: str, lower: str) -> None:
        check: list[tuple[str, Callable[[float, float], bool], str]] = [
            (upper, lambda o, n: n < o, "lowered"),
            (lower, lambda o, n: n > o, "raised"),
        ]
        for keyword, tighter, verb in check:
            o, n = old.get(keyword), new.get(keyword)
            if n is None:
                continue
            if o is None:
                self.add(path, CONSTRAINT_TIGHTENED, f"{keyword} {n} added")
            elif tighter(float(o), float(n)):
                self.add(path, CONSTRAINT_TIGHTENED, f"{keyword} {verb} from {o} to {n}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _values(schema: Schema) -> set[Any] | None:
    if "enum" in schema:
        return {json.dumps(v) if isinstance(v, dict | list) else v for v in schema["enum"]}
    if "const" in schema:
        v = schema["const"]
        return {json.dumps(v) if isinstance(v, dict | list) else v}
    return None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def breaking_changes(old: Schema, new: Schema, *, name: str | None = None) -> list[Break]:
    """Every change from `old` to `new` that breaks a producer or consumer of `old`."""
    comparer = _Comparer(old, new)
    comparer.compare(old, new, name or str(new.get("title", old.get("title", ""))))
    return comparer.breaks


def _read_committed(schema_dir: Path, git_ref: str | None) -> dict[str, Schema]:
    if git_ref is None:
        return {
            p.name.removesuffix(".json"): json.loads(p.read_text("utf-8"))
            for p in sorted(schema_dir.glob("*.json"))
        }
    top = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        cwd=schema_dir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    rel = schema_dir.resolve().relative_to(Path(top).resolve()).as_posix()
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{git_ref}:{rel}"],
        cwd=top,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    out: dict[str, Schema] = {}
    for file_name in sorted(listing):
        if file_name.endswith(".json"):
            text = subprocess.run(
                ["git", "show", f"{git_ref}:{rel}/{file_name}"],
                cwd=top,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            out[file_name.removesuffix(".json")] = json.loads(text)
    return out


def check_against(schema_dir: Path, git_ref: str | None = None) -> dict[str, list[Break]]:
    """Breaking changes of every current payload against the committed schemas, by ce_type."""
    from onegrid_contracts.generate import json_schema, payload_models

    models = payload_models()
    result: dict[str, list[Break]] = {}
    for ce_type, old in _read_committed(schema_dir, git_ref).items():
        model = models.get(ce_type)
        if model is None:
            result[ce_type] = [
                Break(ce_type, PAYLOAD_REMOVED, "no model declares this type any more")
            ]
            continue
        found = breaking_changes(old, json_schema(model), name=model.__name__)
        if found:
            result[ce_type] = found
    return result


def format_report(result: dict[str, list[Break]]) -> str:
    lines = []
    for ce_type, found in sorted(result.items()):
        lines.append(f"{ce_type}:")
        lines.extend(f"  - {b}" for b in found)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from onegrid_contracts.generate import SCHEMA_DIR

    parser = argparse.ArgumentParser(prog="python -m onegrid_contracts.compat")
    parser.add_argument("--schemas", type=Path, default=SCHEMA_DIR, help="committed schemas")
    parser.add_argument("--git-ref", default=None, help="read the schemas at this commit")
    args = parser.parse_args(argv)
    result = check_against(args.schemas, args.git_ref)
    if result:
        print("breaking changes (make a new topic/type version instead):", file=sys.stderr)
        print(format_report(result), file=sys.stderr)
        return 1
    print("no breaking changes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
