"""Tests of action pages."""
