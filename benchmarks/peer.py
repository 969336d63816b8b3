"""The peer: django-helpdesk's ``get_email`` on the same mail, in a virtualenv of its own.

django-helpdesk is never a dependency of maildesk. ``ensure_venv`` installs it
with pip into a separate virtualenv (default ``/tmp/maildesk-bench-peer``),
and the peer runs there as a small Django project with a SQLite database.
Its queue reads a Dovecot account on 127.0.0.1 over plain IMAP.
get_email marks every message it turns into a ticket ``\\Deleted`` and
expunges it, so the peer gets its own copy of the mailbox.
Outgoing mail goes to Django's in-memory backend, so the peer sends nothing.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.desk import ProcessResult, run_process
from benchmarks.mailbox import ImapAccount

log = logging.getLogger(__name__)

PEER_PACKAGE = "django-helpdesk==2.6.1"
DEFAULT_VENV = Path("/tmp/maildesk-bench-peer")

_SETTINGS = """\
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.sites",
    "django.contrib.humanize",
    "django.contrib.staticfiles",
    "rest_framework",
    "helpdesk",
]
SITE_ID = 1
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "peer_urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
        "django.template.context_processors.request",
    ]},
}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "peer.sqlite3"}}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
DEFAULT_FROM_EMAIL = "tuki@example.fi"
MEDIA_ROOT = BASE_DIR / "media"
STATIC_URL = "/static/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
# Teams need the pinax-teams app, which a mail benchmark does not use.
HELPDESK_TEAMS_MODE_ENABLED = False
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "root": {"level": "WARNING", "handlers": []}}
"""

_URLS = """\
from django.urls import include, path

urlpatterns = [path("helpdesk/", include("helpdesk.urls", namespace="helpdesk"))]
"""

_CREATE_QUEUE = """\
from helpdesk.models import Queue
Queue.objects.create(
    title="Tuki", slug="tuki", email_address="tuki@example.fi",
    allow_email_submission=True, email_box_type="imap", email_box_host="{host}",
    email_box_port={port}, email_box_ssl=False, email_box_user="{user}",
    email_box_pass="{password}", email_box_imap_folder="INBOX", email_box_interval=0,
    logging_type="none",
)
"""

_COUNT = """\
import json
from helpdesk.models import FollowUp, Ticket
print(json.dumps({"tickets": Ticket.objects.count(), "followups": FollowUp.objects.count()}))
"""


@dataclass
class PeerResult:
    """One get_email run: process figures and what it stored."""

    process: ProcessResult
    tickets: int
    followups: int
    version: str


def ensure_venv(venv: Path = DEFAULT_VENV) -> Path:
    """Create ``venv`` with django-helpdesk unless it already has it; return its python."""
    python = venv / "bin" / "python"
    if not python.exists():
        log.info("creating %s for the peer", venv)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run([str(python), "-c", "import helpdesk"], capture_output=True)
    if probe.returncode != 0:
        log.info("installing %s into %s", PEER_PACKAGE, venv)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", PEER_PACKAGE], check=True
        )
    return python


def peer_version(python: Path) -> str:
    """Return the installed versions of django-helpdesk and Django."""
    script = ("from importlib.metadata import version; "
              "print(f\"django-helpdesk {version('django-helpdesk')}, Django {version('Django')}\")")
    return subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()


def run_peer(python: Path, project: Path, account: ImapAccount) -> PeerResult:
    """Set up a fresh Django project in ``project`` and run get_email once on ``account``."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "peer_settings.py").write_text(_SETTINGS, encoding="utf-8")
    (project / "peer_urls.py").write_text(_URLS, encoding="utf-8")
    manage = [str(python), "-m", "django"]
    environment = {"DJANGO_SETTINGS_MODULE": "peer_settings", "PYTHONPATH": str(project)}
    _django(manage + ["migrate", "--noinput", "-v", "0"], project, environment)
    queue = _CREATE_QUEUE.format(
        host=account.host, port=account.port, user=account.username, password=account.password
    )
    _django(manage + ["shell", "-c", queue], project, environment)

    process = run_process([*manage, "get_email", "--quiet"], env=environment)
    if process.returncode != 0:
        raise RuntimeError(f"get_email exited with {process.returncode}:\n{process.stderr[-3000:]}")
    output = _django(manage + ["shell", "-c", _COUNT], project, environment)
    counts = json.loads(output.strip().splitlines()[-1])
    return PeerResult(process, counts["tickets"], counts["followups"], peer_version(python))


def _django(command: list[str], project: Path, environment: dict[str, str]) -> str:
    completed = subprocess.run(
        command, cwd=project, env={**os.environ, **environment}, capture_output=True, text=True
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command[2:5])} failed:\n{completed.stderr[-3000:]}")
    return completed.stdout
