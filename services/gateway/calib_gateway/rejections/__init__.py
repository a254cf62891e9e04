"""Registrations the registry refused (SPEC §2)."""
