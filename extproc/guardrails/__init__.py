"""Guardrails: policies that look for sensitive data and forbidden content in what callers
send and what models answer, and block, mask or note it — in every client schema, on JSON
answers and on streams at event boundaries."""
