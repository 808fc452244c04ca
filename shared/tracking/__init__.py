"""Tracking an accepted upgrade to its end: the pure policy (interpret a report, next delay, staleness,
timeout), the state machine that applies it, the queue message, and signed callbacks."""
