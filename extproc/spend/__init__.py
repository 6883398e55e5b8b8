"""The spend ledger: one row per settled call, journaled on the request path and shipped to a
durable store (SQLite or PostgreSQL) off it; reports, reconciliation and budget alerts."""
