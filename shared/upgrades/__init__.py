"""The upgrade itself: its model (record, states, status resource) and the create use case."""
