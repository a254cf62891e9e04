"""Stacking jobs of an observatory: the list, retries, deletion, and their live progress."""
