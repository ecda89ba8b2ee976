"""Usage records: one per participant leg and one per conference, written when each ends."""

from .records import ConferenceUsage, LegUsage, NullUsageSink, UsageSink

__all__ = ["ConferenceUsage", "LegUsage", "NullUsageSink", "UsageSink"]
