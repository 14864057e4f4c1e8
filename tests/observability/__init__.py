"""Tests of structured logs, the /metrics scrape and the System page."""
