"""docs/configuration.md and the settings model agree: every key is documented, every documented key exists.

The keys come from walking :class:`exporter.config.settings.Settings` (nested models and the list of targets),
so a new setting without a row in the reference fails here, and so does a row left behind after a key is
renamed or removed.
"""

from __future__ import annotations

import re
import typing

from pydantic import BaseModel

from exporter.config.settings import Settings
from tests.support.tools import ROOT

DOC = ROOT / "docs" / "configuration.md"


def _model(annotation: object) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``Model``, ``list[Model]``, ``Model | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model(arg)
        if found is not None:
            return found
    return None


def setting_keys(model: type[BaseModel] = Settings, prefix: str = "") -> set[str]:
    """Every key of ``model``, dotted (``api.max_qps``); a nested model gives its keys, not its own name."""
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        nested = _model(info.annotation)
        keys |= setting_keys(nested, f"{prefix}{name}.") if nested is not None else {prefix + name}
    return keys


def documented_keys(doc: str) -> set[str]:
    """Keys the reference documents: the rows of each ``## `section` `` table, or the section itself."""
    keys: set[str] = set()
    for section in re.split(r"^## ", doc, flags=re.MULTILINE)[1:]:
        heading = re.match(r"`([a-z_]+)`", section)
        if heading is None:
            continue
        # a nested key (thresholds.lag) or a section of nested keys (credentials.*)
        rows = re.findall(r"^\| `([a-z_.]+(?:\.\*)?)` \|", section, flags=re.MULTILINE)
        keys |= {f"{heading.group(1)}.{row}" for row in rows} if rows else {heading.group(1)}
    return keys


def covered(key: str, documented: set[str]) -> bool:
    """Whether ``key`` has a row, or falls under a ``section.*`` row (a nested section documented elsewhere)."""
    return key in documented or any(d.endswith(".*") and key.startswith(d[:-1]) for d in documented)


def test_every_setting_is_documented() -> None:
    """Each key of the settings model has a row (or, for a top-level value, a section) in configuration.md."""
    documented = documented_keys(DOC.read_text())
    missing = {key for key in setting_keys() if not covered(key, documented)}
    assert not missing, f"settings missing from docs/configuration.md: {sorted(missing)}"


def test_every_documented_key_exists() -> None:
    """Each row of configuration.md names a real key, and so does every `section.key` the page mentions."""
    doc = DOC.read_text()
    keys = setting_keys()
    extra = {d for d in documented_keys(doc) - keys
             if not (d.endswith(".*") and any(k.startswith(d[:-1]) for k in keys))}
    assert not extra, f"documented, not a setting: {sorted(extra)}"
    sections = {key.split(".")[0] for key in keys}
    mentioned = {m for m in re.findall(r"`([a-z_]+\.[a-z_*]+)`", doc) if m.split(".")[0] in sections}
    unknown = {m for m in mentioned if m not in keys and not (m.endswith(".*") and m[:-2] in sections)}
    assert not unknown, f"configuration.md mentions keys that do not exist: {sorted(unknown)}"


def test_the_walk_sees_nested_and_listed_models() -> None:
    """The walk reaches into nested models and the target list, so the checks above cover them."""
    keys = setting_keys()
    assert {"api.max_qps", "targets.group_allow", "web.telemetry_path", "shard", "demo"} <= keys
    assert "api" not in keys and "targets" not in keys


def test_architecture_page_names_only_modules_that_exist() -> None:
    """docs/architecture.md's package map and its 'where to add' names real folders and modules."""
    root = ROOT
    text = (root / "docs" / "architecture.md").read_text()
    folders = set(re.findall(r"`exporter/([a-z_]+)/`", text))
    assert folders >= {"config", "cloud", "targets", "polling", "metrics", "web", "simulator"}
    for folder in folders:
        assert (root / "exporter" / folder / "__init__.py").is_file(), folder
    for row in re.findall(r"^\| `exporter/([a-z_]+)/` \|.*\| (.*) \|$", text, flags=re.M):
        folder, modules = row
        for module in re.findall(r"`([a-z_]+\.py)`", modules):
            assert (root / "exporter" / folder / module).is_file(), f"{folder}/{module}"
    for folder, module in re.findall(r"`([a-z]+)/([a-z_]+\.py)`", text):
        assert (root / "exporter" / folder / module).is_file() or (root / "tests" / folder / module).is_file(), \
            f"{folder}/{module}"
