"""The demo a newcomer sees after `make run`: fictitious supporters and one finished blast."""

from outreach.demo.seed import (
    DEMO_BLAST,
    DEMO_LIST,
    DEMO_SLUG,
    DemoRefused,
    DemoSummary,
    demo_blast_id,
    seed_demo,
)

__all__ = ["DEMO_BLAST", "DEMO_LIST", "DEMO_SLUG", "DemoRefused", "DemoSummary", "demo_blast_id",
           "seed_demo"]
