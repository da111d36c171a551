"""Tests of the reserve auditor, against real anvil nodes."""
