#!/usr/bin/env python3
"""Release bookkeeping for the release workflow and the tests: one version everywhere.

A release is the git tag ``vX.Y.Z``. The build takes the package version from the tag (hatch-vcs); a few
places in the repository must carry the same version so that a tree without git metadata, the chart and
the image agree with it: Chart.yaml's ``version`` and ``appVersion``, pyproject.toml's ``fallback-version``
and the Dockerfile's ``VERSION`` default. CHANGELOG.md holds one ``## X.Y.Z - YYYY-MM-DD`` section per
release, whose text becomes the release notes.

    release.py check vX.Y.Z   the version, if the tag is well formed and every place above agrees with it
                              and CHANGELOG.md has a section for it; else the disagreements, exit 1
    release.py notes vX.Y.Z   that CHANGELOG.md section's text
    release.py show           the version the repository carries, after checking its places agree

Standard library only: the workflow runs it before anything is installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHART = Path("deploy/helm/alikafka-exporter/Chart.yaml")
TAG = re.compile(r"v(?P<version>\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?)")
RELEASE_HEADING = re.compile(r"^## \[?(?P<version>\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?)\]?(?: +- +\d{4}-\d{2}-\d{2})? *$")


class ReleaseError(Exception):
    """The repository or the tag does not make a consistent release; the message lists why."""


def version_of_tag(tag: str) -> str:
    """``v1.2.3`` -> ``1.2.3`` (pre-releases ``v1.2.3rc1`` too); anything else is refused."""
    match = TAG.fullmatch(tag)
    if match is None:
        raise ReleaseError(f"tag {tag!r} is not a release tag vX.Y.Z (or vX.Y.ZrcN)")
    return match["version"]


def _yaml_scalar(text: str, key: str) -> str | None:
    """A top-level ``key: value`` of a flat YAML file (quotes stripped), without a YAML library."""
    match = re.search(rf"^{key}:[ \t]*[\"']?([^\"'\s#]+)[\"']?[ \t]*(?:#.*)?$", text, re.MULTILINE)
    return match[1] if match else None


def carried_versions(root: Path = ROOT) -> dict[str, str | None]:
    """Every place in the repository that carries the version -> the version it carries (None: missing)."""
    chart = (root / CHART).read_text(encoding="utf-8")
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    dockerfile = (root / "Dockerfile").read_text(encoding="utf-8")
    docker_version = re.search(r"^ARG VERSION=(\S+)$", dockerfile, re.MULTILINE)
    fallback = pyproject.get("tool", {}).get("hatch", {}).get("version", {}).get("fallback-version")
    return {
        f"{CHART} version": _yaml_scalar(chart, "version"),
        f"{CHART} appVersion": _yaml_scalar(chart, "appVersion"),
        "pyproject.toml [tool.hatch.version] fallback-version": fallback,
        "Dockerfile ARG VERSION default": docker_version[1] if docker_version else None,
    }


def released_versions(root: Path = ROOT) -> list[str]:
    """The versions CHANGELOG.md has a release section for, newest (topmost) first."""
    lines = (root / "CHANGELOG.md").read_text(encoding="utf-8").splitlines()
    return [m["version"] for m in map(RELEASE_HEADING.match, lines) if m]


def notes(version: str, root: Path = ROOT) -> str:
    """The text of CHANGELOG.md's section for ``version``, up to the next ``## `` heading."""
    lines = (root / "CHANGELOG.md").read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if (m := RELEASE_HEADING.match(line)) and m["version"] == version),
                 None)
    if start is None:
        raise ReleaseError(f"CHANGELOG.md has no section '## {version} - YYYY-MM-DD'")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    text = "\n".join(lines[start + 1 : end]).strip()
    if not text:
        raise ReleaseError(f"CHANGELOG.md's section for {version} is empty")
    return text + "\n"


def repository_version(root: Path = ROOT) -> str:
    """The one version every place carries; a ReleaseError naming each place when they disagree."""
    carried = carried_versions(root)
    found = set(carried.values())
    if len(found) != 1 or None in found:
        listed = "\n".join(f"  {place}: {version or 'missing'}" for place, version in carried.items())
        raise ReleaseError(f"the repository's versions disagree:\n{listed}")
    return next(iter(carried.values())) or ""


def check(tag: str, root: Path = ROOT) -> str:
    """The tag's version, if the repository carries it and CHANGELOG.md has its (non-empty) section."""
    version = version_of_tag(tag)
    carried = repository_version(root)
    if carried != version:
        raise ReleaseError(f"tag {tag} but the repository carries {carried}: bump Chart.yaml, pyproject.toml's "
                           "fallback-version and the Dockerfile's VERSION first (docs/releasing.md)")
    notes(version, root)
    return version


def main(argv: list[str]) -> int:
    try:
        match argv:
            case ["check", tag]:
                print(check(tag))
            case ["notes", tag]:
                print(notes(version_of_tag(tag)), end="")
            case ["show"]:
                print(repository_version())
            case _:
                print(__doc__, file=sys.stderr)
                return 2
    except ReleaseError as e:
        print(f"release.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
