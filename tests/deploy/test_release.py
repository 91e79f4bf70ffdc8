"""Releases (issue 17): the GitHub workflows, one version from the git tag, and the release steps run here.

The workflows are checked the ways that work offline: against GitHub's workflow schema (check-jsonschema),
by zizmor's security audits, and by reading what they do (pins, permissions, the tag reaching every
artefact). The release steps that can run without a registry run for real: the wheel built with a tag's
version reports it (``--version``, ``alikafka_exporter_build_info``), ``make sbom`` describes the runtime and
nothing else, ``helm package`` takes the tag, and the versions the repository carries agree.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.support.procs import clean_env, free_port, http_get, process, wait_for
from tests.support.samples import value
from tests.support.tools import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
RELEASE_PY = ROOT / "scripts" / "release.py"
CHART_DIR = ROOT / "deploy" / "helm" / "alikafka-exporter"
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+\.\d+\.\d+\s*$")


def workflow(name: str) -> dict[Any, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def release_py(*args: str, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(root / "scripts" / "release.py"), *args], capture_output=True,
                          text=True, timeout=30, check=False)


# --- the workflows -----------------------------------------------------------------------------------------

def test_the_three_workflows_and_dependabot_validate_against_their_schemas() -> None:
    files = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
    assert files == ["ci.yml", "rebuild.yml", "release.yml"]
    for schema, paths in (("vendor.github-workflows", sorted(WORKFLOWS.glob("*.yml"))),
                          ("vendor.dependabot", [ROOT / ".github" / "dependabot.yml"])):
        proc = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", schema, *map(str, paths)],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_finds_nothing_of_medium_or_high_severity() -> None:
    proc = subprocess.run([str(BIN / "zizmor"), "--offline", "--format", "json", "--min-severity", "medium",
                           str(WORKFLOWS)], capture_output=True, text=True, timeout=120, check=False)
    findings = json.loads(proc.stdout or "[]")
    described = [(f["ident"], f["determinations"]["severity"], f["locations"][0]["concrete"]["feature"])
                 for f in findings]
    assert described == [], described
    assert proc.returncode == 0, proc.stderr


def test_zizmor_reports_what_these_tests_rely_on_it_for(tmp_path: Path) -> None:
    """zizmor really audits here: an unpinned, credential-persisting, injectable workflow is flagged high."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: pull_request_target\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
                   "      - uses: actions/checkout@v4\n"
                   "      - run: echo \"${{ github.event.pull_request.title }}\"\n", encoding="utf-8")
    proc = subprocess.run([str(BIN / "zizmor"), "--offline", "--format", "json", str(bad)], capture_output=True,
                          text=True, timeout=120, check=False)
    found = {f["ident"] for f in json.loads(proc.stdout) if f["determinations"]["severity"] == "High"}
    assert {"unpinned-uses", "template-injection", "dangerous-triggers"} <= found


@pytest.mark.parametrize("name", ["ci.yml", "release.yml", "rebuild.yml"])
def test_actions_pinned_by_commit_least_privilege_no_persisted_credentials(name: str) -> None:
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    for line in text.splitlines():
        if re.match(r"\s*-?\s*uses:", line):
            ref = line.split("uses:", 1)[1].split("#", 1)[0].strip()
            assert SHA_PIN.match(ref), f"{name}: {line.strip()} is not pinned by a full commit SHA"
            assert VERSION_COMMENT.search(line), f"{name}: {line.strip()} has no '# vX.Y.Z' comment"
    data = workflow(name)
    assert data["permissions"] == {}, "top-level permissions: {} (each job asks for what it needs)"
    for job_name, job in data["jobs"].items():
        assert "permissions" in job, f"{name}: job {job_name} has no permissions block"
        assert "write-all" not in str(job["permissions"])
        for step in steps(job):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, f"{name}: {job_name} checkout"


def test_ci_runs_the_readme_test_command_on_pushes_and_pull_requests() -> None:
    data = workflow("ci.yml")
    assert {"push", "pull_request"} <= set(data["on"])
    runs = " ".join(str(s.get("run", "")) for job in data["jobs"].values() for s in steps(job))
    assert ".ci/run" in runs
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test$", ci_run, re.MULTILINE)
    assert "make test " in (ROOT / "README.md").read_text(encoding="utf-8")  # the README's test command


def _job_text(job: dict[str, Any]) -> str:
    return yaml.safe_dump(job)


def test_release_workflow_publishes_every_artefact_with_the_tags_version() -> None:
    data = workflow("release.yml")
    assert data["on"] == {"push": {"tags": ["v*"]}}
    jobs = data["jobs"]
    check_run = " ".join(str(s.get("run", "")) for s in steps(jobs["check"]))
    assert 'scripts/release.py check "$TAG"' in check_run
    assert any(s.get("env", {}).get("TAG") == "${{ github.ref_name }}" for s in steps(jobs["check"]))
    version = "${{ needs.check.outputs.version }}"
    # the package: built with the tag's version, published by trusted publishing (OIDC), no token
    assert jobs["dist"]["env"]["SETUPTOOLS_SCM_PRETEND_VERSION"] == version
    assert "make dist sbom" in _job_text(jobs["dist"])
    pypi = jobs["pypi"]
    assert pypi["permissions"] == {"id-token": "write"}
    publish = [s for s in steps(pypi) if str(s.get("uses", "")).startswith("pypa/gh-action-pypi-publish@")]
    assert len(publish) == 1
    assert not {"password", "user"} & set(publish[0].get("with", {}))
    assert "secrets." not in _job_text(pypi)
    # the image: both platforms, the tag's version as tag and build argument, SBOM, provenance, signed
    build = next(s for s in steps(jobs["image"]) if str(s.get("uses", "")).startswith("docker/build-push-action@"))
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert f"VERSION={version}" in build["with"]["build-args"]
    assert build["with"]["tags"].endswith(f":{version}")
    assert build["with"]["sbom"] is True
    assert build["with"]["provenance"] == "mode=max"
    assert "cosign sign --yes" in _job_text(jobs["image"])
    assert jobs["image"]["permissions"]["id-token"] == "write"
    # the chart: packaged with the tag as version and appVersion, pushed to an OCI registry, signed
    chart = jobs["chart"]
    assert chart["env"]["VERSION"] == version
    chart_run = " ".join(str(s.get("run", "")) for s in steps(chart))
    assert '--version "$VERSION" --app-version "$VERSION"' in chart_run
    assert 'helm push "charts/alikafka-exporter-${VERSION}.tgz" "oci://${CHARTS}"' in chart_run
    assert "cosign sign --yes" in chart_run
    assert "ghcr.io/${OWNER,,}/charts" in _job_text(jobs["check"])
    # the GitHub release: notes from CHANGELOG.md; SBOM, chart, dashboards and alert rules attached
    release_run = " ".join(str(s.get("run", "")) for s in steps(jobs["release"]))
    assert 'scripts/release.py notes "$TAG"' in release_run
    for asset in ("assets/*", "grafana/dashboards/*.json", "deploy/helm/alikafka-exporter/files/alerts.yaml"):
        assert asset in release_run
    assert {"sbom", "chart"} <= {s.get("with", {}).get("name") for s in steps(jobs["release"])}
    assert jobs["release"]["permissions"] == {"contents": "write"}
    assert set(jobs["pypi"]["needs"]) >= {"dist", "image", "chart"}  # PyPI, which cannot be redone, goes last


def test_weekly_rebuild_builds_the_latest_release_on_a_fresh_base_and_signs_it() -> None:
    data = workflow("rebuild.yml")
    assert [c["cron"].split()[4] for c in data["on"]["schedule"]] == ["1"]  # weekly
    job = data["jobs"]["rebuild"]
    text = _job_text(job)
    assert "gh release view" in text
    checkout = next(s for s in steps(job) if str(s.get("uses", "")).startswith("actions/checkout@"))
    assert checkout["with"]["ref"] == "${{ steps.latest.outputs.tag }}"
    build = next(s for s in steps(job) if str(s.get("uses", "")).startswith("docker/build-push-action@"))
    assert "BASE_IMAGE=python:3.12-slim\n" in build["with"]["build-args"]
    assert build["with"]["pull"] is True and build["with"]["no-cache"] is True
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert "cosign sign --yes" in text


def test_dependabot_covers_pip_docker_and_actions() -> None:
    data = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text(encoding="utf-8"))
    assert {u["package-ecosystem"] for u in data["updates"]} == {"pip", "docker", "github-actions"}


# --- one version ---------------------------------------------------------------------------------------------

def test_the_repository_carries_one_version_and_it_is_the_last_release() -> None:
    """Chart.yaml version and appVersion, the fallback version and the Dockerfile's VERSION agree, and equal
    CHANGELOG.md's newest release (before the first release: the version that release will have)."""
    proc = release_py("show")
    assert proc.returncode == 0, proc.stderr
    carried = proc.stdout.strip()
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["version"] == chart["appVersion"] == carried
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["hatch"]["version"] == {"source": "vcs", "fallback-version": carried}
    released = re.findall(r"^## \[?(\d+\.\d+\.\d+\S*?)\]?(?: +- +\d{4}-\d{2}-\d{2})? *$",
                          (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.MULTILINE)
    if released:
        assert released[0] == carried
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))
    assert values["image"]["tag"] == ""  # the chart's default image tag is its appVersion


def _copy_release_files(dest: Path) -> Path:
    for rel in ("pyproject.toml", "Dockerfile", "CHANGELOG.md", "scripts/release.py",
                "deploy/helm/alikafka-exporter/Chart.yaml"):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, dest / rel)
    return dest


def _set_version(root: Path, version: str) -> None:
    """What a release commit does: the carried places say ``version`` and CHANGELOG.md gets its section."""
    for rel, pattern, repl in (
        ("deploy/helm/alikafka-exporter/Chart.yaml", r"^version: .*$", f"version: {version}"),
        ("deploy/helm/alikafka-exporter/Chart.yaml", r"^appVersion: .*$", f'appVersion: "{version}"'),
        ("pyproject.toml", r'^fallback-version = ".*"$', f'fallback-version = "{version}"'),
        ("Dockerfile", r"^ARG VERSION=.*$", f"ARG VERSION={version}"),
    ):
        path = root / rel
        path.write_text(re.sub(pattern, repl, path.read_text(encoding="utf-8"), count=1, flags=re.MULTILINE),
                        encoding="utf-8")
    log = root / "CHANGELOG.md"
    log.write_text(log.read_text(encoding="utf-8").replace(
        "## Unreleased\n", f"## Unreleased\n\n## {version} - 2027-01-04\n\n### Fixed\n- One line.\n\n## 0.0.9 - 2026-01-01\n"
        "\n- Older.\n", 1), encoding="utf-8")


def test_release_check_accepts_a_prepared_tag_and_names_every_disagreement(tmp_path: Path) -> None:
    root = _copy_release_files(tmp_path)
    proc = release_py("check", "v2.3.4", root=root)
    assert proc.returncode == 1 and "repository carries" in proc.stderr  # not prepared: refused
    _set_version(root, "2.3.4")
    proc = release_py("check", "v2.3.4", root=root)
    assert (proc.returncode, proc.stdout) == (0, "2.3.4\n"), proc.stderr
    notes = release_py("notes", "v2.3.4", root=root)
    assert notes.stdout == "### Fixed\n- One line.\n"  # the section only, not the next release's
    assert release_py("check", "2.3.4", root=root).returncode == 1  # no "v": not a release tag
    assert release_py("check", "v2.3.5", root=root).returncode == 1
    chart = root / "deploy/helm/alikafka-exporter/Chart.yaml"
    chart.write_text(chart.read_text(encoding="utf-8").replace('appVersion: "2.3.4"', 'appVersion: "2.3.3"'),
                     encoding="utf-8")
    proc = release_py("check", "v2.3.4", root=root)
    assert proc.returncode == 1
    assert "Chart.yaml appVersion: 2.3.3" in proc.stderr and "Dockerfile ARG VERSION default: 2.3.4" in proc.stderr


def _hatch_version(cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "hatchling", "version"], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False, env=clean_env())
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false",
                    "-c", "tag.gpgsign=false", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def test_the_git_tag_is_the_version_and_a_tree_without_tags_still_builds(tmp_path: Path) -> None:
    """No git: the fallback (the last release). A clone without tags (how CI clones): a dev version after
    it. A tag vX.Y.Z: exactly X.Y.Z."""
    root = _copy_release_files(tmp_path / "src")
    (root / "README.md").write_text("x\n", encoding="utf-8")
    assert _hatch_version(root) == "0.1.0"
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "first")
    untagged = _hatch_version(root)
    # setuptools-scm 10 counts from the fallback (0.1.1.dev1), older ones from 0.0 (0.1.dev1): a dev build
    assert re.fullmatch(r"0\.1(\.1)?\.dev1\+g[0-9a-f]+", untagged), untagged
    _git(root, "tag", "v0.2.0")
    assert _hatch_version(root) == "0.2.0"


def test_make_run_installs_the_runtime_only_and_make_test_the_test_tools() -> None:
    def planned(target: str) -> list[str]:
        proc = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        return [line for line in proc.stdout.splitlines() if "pip install" in line]

    run = planned("run")
    assert run and all("[test]" not in line and ".venv-run/" in line for line in run), run
    assert any("[test]" in line for line in planned("pytest"))


# --- the release steps, run here --------------------------------------------------------------------------

@pytest.mark.e2e
def test_a_wheel_built_for_a_tag_reports_that_version_everywhere(tmp_path: Path) -> None:
    """The wheel built as the release workflow builds it (the tag's version handed to hatch-vcs) says that
    version in its metadata, ``--version`` and ``alikafka_exporter_build_info``."""
    out, site = tmp_path / "dist", tmp_path / "site"
    env = clean_env(SETUPTOOLS_SCM_PRETEND_VERSION="9.8.7")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300, env=env)
    wheels = [p.name for p in out.glob("*.whl")]
    assert wheels == ["alikafka_exporter-9.8.7-py3-none-any.whl"]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(out / wheels[0])], check=True, capture_output=True, timeout=300)
    metadata = (site / "alikafka_exporter-9.8.7.dist-info" / "METADATA").read_text(encoding="utf-8")
    assert metadata.startswith("Metadata-Version: 2.4\n")  # what the publishing tools parse, not the newest
    env = clean_env(PYTHONPATH=str(site))  # the wheel's package and metadata first; dependencies from this venv
    proc = subprocess.run([sys.executable, "-m", "exporter", "--version"], env=env, capture_output=True, text=True,
                          timeout=60, check=True, cwd=tmp_path)
    assert proc.stdout.strip() == "alikafka-exporter 9.8.7"
    port = free_port()
    cmd = [sys.executable, "-m", "exporter", "--demo", "--web.listen-address", f"127.0.0.1:{port}"]
    with process(cmd, env, tmp_path / "exporter.log"):
        def scrape() -> bytes | None:
            status, body = http_get(f"http://127.0.0.1:{port}/metrics")
            return body if status == 200 else None

        body = wait_for(scrape, 30, "the exporter's /metrics")
    assert value(body, "alikafka_exporter_build_info", version="9.8.7") == 1


@pytest.mark.e2e
def test_make_sbom_describes_the_runtime_dependencies_and_nothing_else(tmp_path: Path) -> None:
    env = clean_env(SETUPTOOLS_SCM_PRETEND_VERSION="9.8.7")
    proc = subprocess.run(["make", "sbom", f"DIST={tmp_path}", f"SBOM_ENV={tmp_path / 'env'}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    bom = json.loads((tmp_path / "alikafka-exporter-9.8.7.cdx.json").read_text(encoding="utf-8"))
    assert bom["bomFormat"] == "CycloneDX"
    names = {c["name"].lower().replace("_", "-"): c["version"] for c in bom["components"]}
    assert names["alikafka-exporter"] == "9.8.7"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    runtime = {re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0].lower() for d in pyproject["project"]["dependencies"]}
    assert runtime <= set(names)
    test_only = {"pytest", "mypy", "ruff", "hypothesis", "zizmor", "check-jsonschema", "cyclonedx-bom", "pip",
                 "setuptools", "hatchling", "helm-python-sdk"}
    assert not test_only & set(names), test_only & set(names)


def test_helm_package_takes_the_tags_version_and_defaults_the_image_to_it(tmp_path: Path) -> None:
    """The release workflow's `helm package --version X --app-version X`, with Helm's own engine."""
    archive = Path(helm.package(CHART_DIR, destination=tmp_path, version="9.8.7", app_version="9.8.7"))
    assert archive.name == "alikafka-exporter-9.8.7.tgz"
    with tarfile.open(archive) as tar:
        member = tar.extractfile("alikafka-exporter/Chart.yaml")
        assert member is not None
        chart = yaml.safe_load(member.read())
    assert (chart["version"], chart["appVersion"]) == ("9.8.7", "9.8.7")
    with helm.Chart.load(archive) as loaded:
        rendered = loaded.render({"config": {"targets": [{"instance_id": "alikafka_post-cn-x", "groups": ["g"]}]}},
                                 name="r", namespace="monitoring")
    images = re.findall(r"image: \"?([^\"\s]+)", "\n".join(rendered.values()))
    assert images and set(images) == {"ghcr.io/alikafka-exporter/alikafka-exporter:9.8.7"}


def test_dockerfile_base_is_pinned_by_digest_where_dependabot_reads_it() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    default = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.MULTILINE)
    assert default is not None
    stage = re.search(rf"^FROM (\S+) AS {re.escape(default[1])}$", text, re.MULTILINE)
    assert stage is not None, "BASE_IMAGE's default names a stage whose FROM line Dependabot can update"
    assert re.fullmatch(r"python:3\.12-slim@sha256:[0-9a-f]{64}", stage[1]), stage[1]
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS build$", text, re.MULTILINE)
    assert "SETUPTOOLS_SCM_PRETEND_VERSION=${VERSION}" in text  # the build stage has no git: the tag comes in
