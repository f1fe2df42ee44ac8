"""Files a project reads into its output stay inside its directory (issue 22's decision,
docs/threat-model.md): `env_file: ${HOME}/.aws/credentials` in a repository CI builds
must not compile CI's credentials into user-data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_holosc

SECRET = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI-ci-secret\n"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A CI runner's home with credentials, beside (not inside) the cloned project."""
    (tmp_path / "home" / ".aws").mkdir(parents=True)
    (tmp_path / "home" / ".aws" / "credentials").write_text(SECRET)
    (tmp_path / "repo").mkdir()
    return tmp_path / "home"


def project(tmp_path: Path, service: str) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    (repo / "holos.yaml").write_text(
        f"name: demo\nservices:\n  web:\n    image: debian:12\n{service}"
    )
    return repo


def test_env_file_outside_the_project_is_refused(tmp_path: Path, home: Path) -> None:
    repo = project(tmp_path, "    env_file: ${HOME}/.aws/credentials\n")
    result = run_holosc("build", cwd=repo, env={"HOME": str(home)})
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith(
        "holos.yaml:5:15: error: services.web.env_file: cannot read env_file "
        f"{home}/.aws/credentials: {home}/.aws/credentials is outside the project "
        f"directory {repo}"
    ), result.stderr
    assert f"HOLOSC_ALLOW_PATHS={home}/.aws" in result.stderr
    assert "wJalrXUtnFEMI" not in result.stderr and not (repo / "deploy").exists()


def test_a_symlink_in_the_project_counts_where_it_leads(tmp_path: Path, home: Path) -> None:
    repo = project(tmp_path, "    env_file: ci.env\n")
    (repo / "ci.env").symlink_to(home / ".aws" / "credentials")
    result = run_holosc("build", cwd=repo)
    assert result.returncode == 3 and "is outside the project directory" in result.stderr
    assert not (repo / "deploy").exists()


def test_include_and_extends_outside_the_project_are_refused(tmp_path: Path) -> None:
    (tmp_path / "shared.yaml").write_text("services:\n  base:\n    image: debian:12\n")
    repo = project(tmp_path, "    extends: {file: ../shared.yaml, service: base}\n")
    text = (repo / "holos.yaml").read_text()
    (repo / "holos.yaml").write_text("include: [../shared.yaml]\n" + text)
    result = run_holosc("build", cwd=repo)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("holos.yaml:1:11: error: include[0]: cannot include ../shared")
    assert lines[1].startswith("holos.yaml:6:14: error: services.web.extends: cannot read ")
    assert all("is outside the project directory" in line for line in lines[:2])


def test_holosc_allow_paths_lets_the_user_choose(tmp_path: Path, home: Path) -> None:
    """Only holosc's own environment allows: a `.env` in the project (which interpolation
    reads) cannot."""
    repo = project(tmp_path, "    env_file: ${HOME}/.aws/credentials\n")
    (repo / ".env").write_text(f"HOLOSC_ALLOW_PATHS={home}\n")
    assert run_holosc("build", cwd=repo, env={"HOME": str(home)}).returncode == 3
    allowed = run_holosc(
        "build", cwd=repo, env={"HOME": str(home), "HOLOSC_ALLOW_PATHS": f"/nowhere:{home}"}
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "wJalrXUtnFEMI" in (repo / "deploy" / "demo" / "web-0" / "user-data").read_text()


def test_files_inside_the_project_need_nothing(tmp_path: Path) -> None:
    repo = project(tmp_path, "    env_file: env/../env/web.env\n")
    (repo / "env").mkdir()
    (repo / "env" / "web.env").write_text("GREETING=hello\n")
    (repo / "db").mkdir()
    (repo / "db" / "holos.yaml").write_text("services:\n  db:\n    image: debian:12\n")
    text = (repo / "holos.yaml").read_text()
    (repo / "holos.yaml").write_text("include: [db/holos.yaml]\n" + text)
    result = run_holosc("build", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "GREETING" in (repo / "deploy" / "demo" / "web-0" / "user-data").read_text()


def test_an_includes_env_file_outside_the_project_is_refused(tmp_path: Path, home: Path) -> None:
    """The long syntax's env_file interpolates the included file: its values reach the
    output as surely as a service's env_file."""
    repo = project(tmp_path, "")
    (repo / "db").mkdir()
    (repo / "db" / "holos.yaml").write_text(
        "services:\n  db:\n    image: debian:12\n    environment: {KEY: ${AWS_SECRET_ACCESS_KEY}}\n"
    )
    text = (repo / "holos.yaml").read_text()
    (repo / "holos.yaml").write_text(
        "include:\n  - path: db/holos.yaml\n    env_file: ${HOME}/.aws/credentials\n" + text
    )
    result = run_holosc("build", cwd=repo, env={"HOME": str(home)})
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("holos.yaml:2:5: error: include[0]: cannot include"), (
        result.stderr
    )
    assert "is outside the project directory" in result.stderr
    assert "wJalrXUtnFEMI" not in result.stderr and not (repo / "deploy").exists()
