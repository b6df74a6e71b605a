"""The system under test: the reaction service, the notification service and the push sink."""
