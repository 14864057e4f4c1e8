"""Blasts: an audience, a template version, a schedule, and the pipeline that sends them."""
