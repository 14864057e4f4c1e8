"""Metrics: a blast's true figures (human and machine apart), the overview and SMS replies.

Figures come from message counts (one GROUP BY on the blast's status index) and the hourly
rollups the tracking ingestion keeps; they never scan the `events` table. Only lists of
recipients (who opened, who clicked) read `events`, through its (blast_id, kind) index.
"""
