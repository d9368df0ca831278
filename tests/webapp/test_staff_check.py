"""One staff check (``user_is_admin``) behind every page kept for admins: the generation
pages, every study's researcher pages, creating a study. Whoever passes it somewhere passes
it everywhere; whoever fails it fails it everywhere."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from webapp.studies.selectors import user_is_admin

pytestmark = pytest.mark.django_db

# (path, what an admin gets, what a signed-in user who is neither admin nor the study's researcher gets)
ADMIN_PAGES = (
    ("/generation/", 200, 404),
    ("/generation/study/{slug}/", 200, 404),
    ("/research/{slug}/", 200, 404),
    ("/run/{slug}/", 200, 404),
    ("/run/new/", 200, 403),
)
ACCOUNTS = {
    "staff": {"is_staff": True},
    "superuser without is_staff": {"is_superuser": True},
    "plain": {},
}


def _client(**flags) -> Client:
    user = get_user_model().objects.create_user(username="someone", password="pw-for-tests", **flags)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("account", sorted(ACCOUNTS))
def test_every_admin_page_asks_the_one_staff_check(account, study):
    flags = ACCOUNTS[account]
    admin = bool(flags)
    client = _client(**flags)
    assert user_is_admin(user=get_user_model().objects.get(username="someone")) is admin
    for path, as_admin, as_other in ADMIN_PAGES:
        url = path.format(slug=study.slug)
        assert client.get(url).status_code == (as_admin if admin else as_other), url
    listed = client.get("/research/").content.decode()
    assert (f"/research/{study.slug}/" in listed) is admin
    run_page = client.get(f"/run/{study.slug}/").content.decode()
    assert ('id="generation-link"' in run_page) is admin


def test_an_inactive_staff_account_is_no_admin(study):
    user = get_user_model().objects.create_user(username="gone", password="pw", is_staff=True, is_active=False)
    assert not user_is_admin(user=user)
