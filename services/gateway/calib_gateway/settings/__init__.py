"""The calibration settings of an observatory (SPEC §3)."""
