"""The Locust side: the device user, its tokens and calls, run-wide state, storm tasks."""
