"""Settings for the worker processes the service tests start: the test's database and Redis.

The test process creates the test database (pytest-django) and passes its name; the
workers connect to that very database, so rows the test commits are what they see.
"""
import os

from webapp.settings import *  # noqa: F403  every production setting, then the overrides below
from webapp.settings import DATABASES

DATABASES["default"]["NAME"] = os.environ["FUSION_TEST_DB_NAME"]
CELERY_BROKER_URL = os.environ["FUSION_TEST_REDIS_URL"]
CELERY_BROKER_TRANSPORT_OPTIONS = {}
# The sweep runs every second here (every minute in production), so that a killed
# worker's part comes back within the test's time.
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-parts": {"task": "webapp.generation.tasks.requeue_stale_parts", "schedule": 1.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = os.environ["FUSION_TEST_BEAT_FILE"]
