"""Credentials come from settings and never reach logs, errors or reprs."""

from __future__ import annotations

import os
import subprocess
import sys

from agentstream.contract.settings import Settings, redact_url

SECRET = "s3cr3t-pa55"


def test_settings_repr_and_redacted_url_hide_the_password() -> None:
    settings = Settings(
        database_url=f"postgresql://writer:{SECRET}@db.example:5432/agentstream",
        kafka_sasl_password=SECRET,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="svc",
    )
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    assert settings.database_url_redacted() == "postgresql://writer:***@db.example:5432/agentstream"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    # libpq's keyword form and URL query parameters hide the password too.
    assert redact_url(f"host=h user=u password={SECRET} dbname=d") == (
        "host=h user=u password=*** dbname=d"
    )
    assert redact_url(f"host=h password = 'a {SECRET} b' dbname=d") == (
        "host=h password = *** dbname=d"
    )
    assert redact_url(f"postgresql://u@h/d?sslmode=require&password={SECRET}&x=1") == (
        "postgresql://u@h/d?sslmode=require&password=***&x=1"
    )
    # ...yet the clients get the real credentials.
    assert settings.kafka_client_options()["sasl_plain_password"] == SECRET
    assert settings.kafka_client_options()["sasl_mechanism"] == "PLAIN"


def test_a_failing_command_does_not_print_the_password() -> None:
    env = {
        **os.environ,
        "AGENTSTREAM_DATABASE_URL": f"postgresql://writer:{SECRET}@127.0.0.1:1/agentstream",
    }
    done = subprocess.run(
        [sys.executable, "-m", "agentstream", "migrate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "cannot reach PostgreSQL at postgresql://writer:***@127.0.0.1:1" in done.stderr
    assert SECRET not in done.stdout + done.stderr
