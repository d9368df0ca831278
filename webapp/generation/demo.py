"""The demo study: users, checkpoints and a study made from ``fixtures/protocols/demo.json``.

Re-running the demo reuses what exists: the users (their demo passwords reset), the
checkpoints (same weights, same rows), and the latest demo study made from the same
protocol and checkpoints, whose missing images are then generated. A fresh study (slug
``demo-2``, ``demo-3``, ...) is made when asked, or when the protocol or the shipped
checkpoints changed, or the last demo study was closed.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import CommandError
from django.db import transaction
from django.urls import reverse

from evalstudy.protocol import Protocol
from webapp.ownerfiles import owner_only_text
from webapp.studies.lifecycle import study_create
from webapp.studies.models import Checkpoint, Study

from . import services
from .models import Batch

PROTOCOL = Path(settings.BASE_DIR) / "fixtures" / "protocols" / "demo.json"
CHECKPOINTS = Path(settings.BASE_DIR) / "fixtures" / "checkpoints"
SLUG = "demo"
# The demo's two accounts. Their passwords are random, made once per var folder and kept in
# it (owner-only), then printed to whoever started the demo: a password written here would
# be public, and the admin pages say which model made each image.
class Login(TypedDict):
    username: str
    staff: bool


LOGINS: dict[str, Login] = {
    "admin": {"username": "admin", "staff": True},
    "researcher": {"username": "researcher", "staff": False},
}
PASSWORDS_FILE = "demo_passwords.json"


def demo_passwords(var_dir: Path) -> dict[str, str]:
    """{role: password} kept in ``var_dir``/demo_passwords.json (mode 0600), made with
    ``secrets`` the first time, so that a re-run keeps the printed passwords valid."""
    path = Path(var_dir) / PASSWORDS_FILE
    text = owner_only_text(path, lambda: json.dumps({role: secrets.token_urlsafe(16) for role in LOGINS}))
    try:
        stored = json.loads(text)
    except json.JSONDecodeError:
        stored = None
    if not (isinstance(stored, dict) and all(isinstance(stored.get(r), str) and len(stored[r]) >= 16 for r in LOGINS)):
        raise CommandError(f"{path} holds no usable demo passwords; remove it to have new ones made.")
    return {role: stored[role] for role in LOGINS}


@dataclass(frozen=True)
class DemoStudy:
    study: Study
    reused: bool


def demo_checkpoints_register(*, protocol: Protocol, checkpoints_dir: Path) -> dict[str, Checkpoint]:
    """Register the shipped checkpoint of every variant (``<dir>/<variant>/``); variant -> row."""
    found = {}
    for variant in protocol.variants:
        folder = checkpoints_dir / variant
        sha256, _ = services.checkpoint_read(path=folder)
        found[variant] = services.checkpoint_register(name=f"demo {variant} {sha256[:12]}", path=folder)
    return found


@transaction.atomic
def demo_users_ensure(*, study: Study) -> dict[str, dict]:
    """The demo's admin (staff, superuser) and researcher (of ``study``), with the passwords
    kept under settings.VAR_DIR (`demo_passwords`); {role: {"username", "password"}}."""
    User = get_user_model()
    passwords = demo_passwords(Path(settings.VAR_DIR))
    out = {}
    for role, login in LOGINS.items():
        user, _ = User.objects.get_or_create(username=login["username"])
        user.is_staff = user.is_superuser = login["staff"]
        user.is_active = True
        user.set_password(passwords[role])
        user.save()
        if role == "researcher":
            study.researchers.add(user)
            # ... and may create studies from the web (/run/new/), as a real researcher would be allowed to.
            user.user_permissions.add(Permission.objects.get(content_type__app_label="studies", codename="add_study"))
        out[role] = {"username": login["username"], "password": passwords[role]}
    return out


def _next_slug() -> str:
    taken = set(Study.objects.filter(slug__startswith=SLUG).values_list("slug", flat=True))
    if SLUG not in taken:
        return SLUG
    n = 2
    while f"{SLUG}-{n}" in taken:
        n += 1
    return f"{SLUG}-{n}"


def _reusable(study: Study, checkpoints: dict[str, Checkpoint]) -> bool:
    if study.status == Study.Status.CLOSED:
        return False
    return all(v.checkpoint_id in (None, checkpoints[v.name].pk) for v in study.variants.all() if v.name in checkpoints)


@transaction.atomic
def demo_study_prepare(*, protocol: Protocol, base_dir: Path, checkpoints: dict[str, Checkpoint],
                       fresh: bool = False) -> DemoStudy:
    """The demo study to run: reused when possible (see the module's docstring), else created
    from ``protocol`` (its relative file paths read from ``base_dir``).

    A draft study gets its checkpoints assigned and any batch a previous, interrupted
    demo left active is cancelled (its worker is gone); the next batch makes only the
    missing images.
    """
    content_hash = protocol.content_hash()
    study = None
    if not fresh:
        candidates = Study.objects.filter(slug__startswith=SLUG, protocol_hash=content_hash).order_by("-created_at")
        study = next((s for s in candidates if _reusable(s, checkpoints)), None)
    reused = study is not None
    if study is None:
        study = study_create(protocol=protocol, slug=_next_slug(), base_dir=str(base_dir))
    if study.status == Study.Status.DRAFT:
        for batch in Batch.objects.filter(study=study, status__in=Batch.ACTIVE):
            services.batch_cancel(batch=batch)
        for variant in study.variants.all():
            services.variant_assign_checkpoint(variant=variant, checkpoint=checkpoints[variant.name])
    return DemoStudy(study=study, reused=reused)


def invite_url(study: Study, base_url: str | None = None) -> str:
    """The evaluators' link: FUSION_BASE_URL (or ``base_url``) + /join/<invite token>/."""
    return f"{(base_url or settings.FUSION_BASE_URL).rstrip('/')}{reverse('studies:join', args=[study.invite_token])}"
