"""People, teams, on-call schedules, escalation policies and paging."""
