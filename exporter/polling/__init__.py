"""Polling: the scheduler, the snapshot it publishes, offset histories, time lag, status, supervision."""
