"""JSON documents whose fields are declared once, on the dataclass itself.

As barman's ``infofile.py`` declares a ``Field`` with its name, type, default and its to/from
JSON functions, a document class here is a frozen dataclass whose every field says how it
travels (``field(metadata=json_as(codec))``: a :class:`Codec`, and what a document that
lacks the field means). :class:`Document` is the one routine that writes and reads all of them: the backup
manifest, the binlog manifest, the restore certificate and their nested parts.

Writing: every field through its codec, plus the derived values the class names (a schema
string, totals), as ``json.dumps(indent=2, sort_keys=True)``. Reading: the schema must be the
one this code writes; every field through its codec; a field a document lacks takes its
``missing`` value (when it has one, else the document is refused); a ``null`` counts as
missing unless the field says otherwise. Any error becomes a :class:`ManifestError` naming
the document kind; what the values mean (safe names, unique files) is checked by the caller.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mysqlops.errors import ManifestError

_REQUIRED: Any = dataclasses.MISSING


def utc_iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ManifestError("refusing to write a naive datetime into a manifest")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_utc(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError) as exc:
        raise ManifestError(f"bad timestamp {value!r} in manifest") from exc
    if parsed.tzinfo is None:
        raise ManifestError(f"timestamp {value!r} in manifest has no timezone")
    return parsed.astimezone(UTC)


def plain(value: Any) -> Any:
    """A value made JSON-friendly: enums to values, datetimes to ISO, tuples to lists."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return utc_iso(value)
    if hasattr(value, "value") and isinstance(value.value, str):
        return value.value
    return value


@dataclass(frozen=True)
class Codec:
    """How one field's value is written to JSON and read back."""

    dump: Callable[[Any], Any]
    load: Callable[[Any], Any]


RAW = Codec(plain, lambda raw: raw)  # kept as read; the caller's validation judges it
INT = Codec(plain, int)
TEXT = Codec(plain, str)
FLOAT = Codec(plain, float)
BOOL = Codec(plain, bool)
TIME = Codec(utc_iso, parse_utc)
MAP = Codec(plain, lambda raw: dict(raw or {}))


def enum(cls: Callable[[Any], Any]) -> Codec:
    return Codec(plain, cls)


def tuple_of(inner: Codec) -> Codec:
    return Codec(lambda v: [inner.dump(x) for x in v], lambda raw: tuple(inner.load(x) for x in raw or ()))


def optional(inner: Codec) -> Codec:
    """``None`` stays ``None``; an empty value (``""``, ``{}``) reads as ``None`` too."""
    return Codec(
        lambda v: None if v is None else inner.dump(v),
        lambda raw: inner.load(raw) if raw else None,
    )


def nested(cls: type, *, strict: bool = False) -> Codec:
    """A dataclass document inside another (no schema of its own)."""
    doc = Document(cls, strict=strict)
    return Codec(doc.to_doc, doc.from_doc)


@dataclass(frozen=True)
class Spec:
    codec: Codec
    missing: Any  # the value when a document lacks the field; _REQUIRED: refuse it
    null_is_missing: bool
    stored: bool = True  # False: never written nor read (where it was found, a secret)


def json_as(
    codec: Codec = RAW, *, missing: Any = _REQUIRED, null_is_missing: bool = True, stored: bool = True
) -> dict[str, Spec]:
    """The metadata of a dataclass field that says how it travels:
    ``rows: int = field(metadata=json_as(INT))``. ``missing``: what a document without the
    field reads as (by default the field's default; without one, the field is required).
    ``stored=False``: the field is not part of the document (it takes its default on read)."""
    return {"json": Spec(codec, missing, null_is_missing, stored)}


def _spec(f: dataclasses.Field[Any]) -> Spec:
    spec: Spec = f.metadata.get("json") or Spec(RAW, _REQUIRED, True)
    if spec.missing is not _REQUIRED:
        return spec
    if f.default is not dataclasses.MISSING:
        return dataclasses.replace(spec, missing=f.default)
    if f.default_factory is not dataclasses.MISSING:
        return dataclasses.replace(spec, missing=f.default_factory())
    return spec


@dataclass(frozen=True)
class Document:
    """Writes and reads one dataclass as a JSON document (see the module docstring).

    ``derived``: values written but never read back (``schema`` included when set), e.g.
    totals for people and other tools. ``strict``: refuse keys the class does not declare.
    ``older``: schemas of documents earlier versions wrote that this one still reads (``None``:
    a document without a schema key), each field through the same codec, a field they lack
    taking its ``missing`` value: a file left by an older version stays understood."""

    cls: type
    schema: str | None = None
    what: str = "manifest"
    derived: Mapping[str, Callable[[Any], Any]] = dataclasses.field(default_factory=dict)
    strict: bool = False
    older: tuple[str | None, ...] = ()

    def to_doc(self, obj: Any) -> dict[str, Any]:
        doc = {
            f.name: spec.codec.dump(getattr(obj, f.name))
            for f in dataclasses.fields(self.cls)
            if (spec := _spec(f)).stored
        }
        if self.schema is not None:
            doc["schema"] = self.schema
        for name, compute in self.derived.items():
            doc[name] = compute(obj)
        return doc

    def dumps(self, obj: Any) -> str:
        return json.dumps(self.to_doc(obj), indent=2, sort_keys=True)

    def from_doc(self, doc: Mapping[str, Any], **given: Any) -> Any:
        """The object ``doc`` describes; ``given``: values of fields that are not stored."""
        declared = [f for f in dataclasses.fields(self.cls) if _spec(f).stored]
        if self.strict:
            unknown = set(doc) - {f.name for f in declared}
            if unknown:
                raise TypeError(f"unexpected keys {sorted(unknown)}")
        kwargs = {}
        for f in declared:
            spec = _spec(f)
            if f.name not in doc or (
                doc[f.name] is None and spec.null_is_missing and spec.missing is not _REQUIRED
            ):
                if spec.missing is _REQUIRED:
                    raise KeyError(f.name)
                kwargs[f.name] = spec.missing
            else:
                kwargs[f.name] = spec.codec.load(doc[f.name])
        return self.cls(**kwargs, **given)

    def loads(self, text: str | bytes, **given: Any) -> Any:
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"not a JSON manifest: {exc}") from exc
        if not isinstance(doc, dict):
            raise ManifestError("manifest is not a JSON object")
        found = doc.get("schema")
        if found != self.schema and found not in self.older:
            raise ManifestError(f"unsupported manifest schema {found!r}; this mysqlops reads {self.schema!r}")
        try:
            return self.from_doc(doc, **given)
        except ManifestError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"{self.what} is malformed: {exc!r}") from exc
