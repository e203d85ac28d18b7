"""War-room communication: the update cadence each severity asks of an incident's commander."""
