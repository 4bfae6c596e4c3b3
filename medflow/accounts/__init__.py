"""Accounts context: institutions (tenants), departments, users."""
