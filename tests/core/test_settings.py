"""Start-up configuration: bad values stop the process naming the variable; production is clean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from apps.core.env import ConfigError, env_bool, env_int, env_secret, env_url

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "p" * 20 + "roduction-secret-key-that-is-long-enough-0123456789",
    "ALLOWED_HOSTS": "hopital.example.ch",
    "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.ch:587",
    "DATABASE_URL": "postgres://vh:vh@db.example.ch:5432/vh",
    "REDIS_URL": "redis://cache.example.ch:6379/0",
}


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "MQTT_URL",
            "DEBUG",
            "DJANGO_SETTINGS_MODULE",
            "FIELD_ENCRYPTION_KEYS",
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        }
    }
    base.setdefault("FIELD_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://root@localhost/vh"),
        ("DATABASE_URL", "postgres://host:notaport/vh"),
        ("DEBUG", "maybe"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("STAFF_IDLE_TIMEOUT", "soon"),
        ("TIME_ZONE", "Mars/Olympus"),
        ("TURN_URLS", "https://turn.example.org"),
        ("STUN_URLS", "turn:stun.example.org"),
        ("TELECONSULT_RECORDING_RETENTION_DAYS", "0"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(variable: str, value: str) -> None:
    result = run_manage("check", **{variable: value})

    assert result.returncode != 0
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


def test_turn_servers_need_the_shared_secret() -> None:
    result = run_manage("check", TURN_URLS="turn:turn.example.org:3478")

    assert result.returncode != 0
    assert "TURN_SECRET" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_requires_a_secret_key() -> None:
    env = {**PRODUCTION}
    del env["SECRET_KEY"]

    result = run_manage("check", **env)

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_check_deploy_is_clean_with_production_variables() -> None:
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_env_bool_accepts_the_usual_spellings() -> None:
    assert env_bool("X", False, {"X": "yes"}) is True
    assert env_bool("X", True, {"X": "0"}) is False
    assert env_bool("X", True, {}) is True
    with pytest.raises(ConfigError, match="X"):
        env_bool("X", True, {"X": "sometimes"})


def test_env_int_checks_type_and_minimum() -> None:
    assert env_int("N", 5, {"N": " 42 "}) == 42
    with pytest.raises(ConfigError, match="at least 60"):
        env_int("N", 5, {"N": "10"}, minimum=60)


def test_env_secret_reads_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")

    assert env_secret("S", {"S_FILE": str(secret_file)}) == "from-a-file"
    with pytest.raises(ConfigError, match="either"):
        env_secret("S", {"S": "a", "S_FILE": str(secret_file)})
    with pytest.raises(ConfigError, match="S_FILE"):
        env_secret("S", {"S_FILE": str(tmp_path / "missing")})


def test_env_url_checks_the_scheme() -> None:
    assert env_url("U", ("redis",), {"U": "redis://h:1/0"}) == "redis://h:1/0"
    assert env_url("U", ("redis",), {"U": ""}) is None
    with pytest.raises(ConfigError, match="scheme"):
        env_url("U", ("redis",), {"U": "memcached://h"})


def test_a_bad_encryption_key_is_refused() -> None:
    result = run_manage("check", FIELD_ENCRYPTION_KEYS="not-a-key")

    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS" in result.stderr
