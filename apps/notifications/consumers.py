from apps.accounts.consumers import UserConsumer


class NotificationConsumer(UserConsumer):
    """`/ws/notifications/`: the user's new notifications and unread count, live."""
