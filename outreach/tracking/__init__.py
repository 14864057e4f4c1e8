"""Tracking: opens, clicks, unsubscribes, provider webhooks, bot classification, rollups."""
