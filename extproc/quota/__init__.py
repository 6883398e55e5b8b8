"""Quotas: limits over windows, reserved before a request goes upstream and settled after."""
