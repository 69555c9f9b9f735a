from celery import shared_task

from . import services


@shared_task(
    bind=True,
    autoretry_for=(RuntimeError,),
    retry_backoff=True,
    max_retries=5,
)
def deliver_notification(self, notification_id: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    results = services.deliver(notification_id)
    if "failed" in results.values():
        # Retry only the channels that failed: sent ones are remembered in Delivery rows.
        raise RuntimeError(f"delivery of notification {notification_id} failed: {results}")
    return results
