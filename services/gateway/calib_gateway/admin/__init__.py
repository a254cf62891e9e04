"""Server administration (SPEC §8): observatories, users, tokens; and who a token is."""
