"""Celery application: slow or scheduled work, on Redis when REDIS_URL is set (eager otherwise)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "virtualhospital.settings")

# DjangoTask adds `delay_on_commit`: tasks are queued only once the transaction commits.
app = Celery("virtualhospital", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
