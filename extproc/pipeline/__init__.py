"""Per-request decisions as plain Python values: who is calling, which target serves it."""
