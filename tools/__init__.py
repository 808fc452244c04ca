"""Operator tools run from a checkout of this repository (never deployed: `.funcignore` leaves `tools/` out)."""
