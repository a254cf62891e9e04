"""What an observatory holds and lacks (SPEC §8–§9)."""
